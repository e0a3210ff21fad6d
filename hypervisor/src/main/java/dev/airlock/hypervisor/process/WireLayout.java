package dev.airlock.hypervisor.process;

/**
 * The frames of the daemon's Unix-socket protocol. Every frame, in both directions:
 *
 * <pre>
 *  0               4               6               8                              16
 *  +---------------+-------+-------+-------------------------------+----------------------+
 *  | length (u32)  | type  | zero  | request id (u64)              | payload ...          |
 *  +---------------+-------+-------+-------------------------------+----------------------+
 *  length = bytes after the length field = 12 + payload, at most {@link #MAX_FRAME_BYTES}
 * </pre>
 *
 * All integers are big-endian. A string is a u16 byte count and that many UTF-8 bytes (at most
 * {@link #MAX_STRING_BYTES}); a byte string is a u32 count and the bytes. Descriptors travel with
 * the frame's first byte as {@code SCM_RIGHTS}; only the daemon sends them, and only with the
 * event types that say so below. A request carries a non-zero id chosen by the client; its
 * response carries the same id. Events carry id 0.
 *
 * <p>The first frame on a connection is {@link #HELLO_CONTROL} (a control-plane client) or
 * {@link #ATTACH} (a VM process); anything else, a frame with descriptors, a length out of range, an
 * unknown type, a short or over-long payload, drops the connection with a log line.
 *
 * <table>
 * <caption>requests (client → daemon) and their response payloads</caption>
 * <tr><th>type</th><th>payload</th><th>response payload (status OK)</th></tr>
 * <tr><td>HELLO_CONTROL</td><td>credential (16 bytes)</td><td>max message bytes (u32)</td></tr>
 * <tr><td>ATTACH</td><td>credential (16 bytes)</td><td>vm id, name, role, state, ram size (0 for a backend), ram base, max message bytes, served secondary (u32, 0 unless a backend)</td></tr>
 * <tr><td>CREATE_VM</td><td>name, role (u8), ram size (u64), ram base (u64)</td><td>vm id (u32), credential (16)</td></tr>
 * <tr><td>START_VM, STOP_VM, DESTROY_VM, VM_INFO</td><td>vm id</td><td>(VM_INFO: one vm record)</td></tr>
 * <tr><td>LIST_VMS</td><td>-</td><td>count (u32), vm records: id, name, role, state, ram size</td></tr>
 * <tr><td>CREATE_REGION</td><td>primary, secondary, name, size, primary base, secondary base</td><td>region id (u64)</td></tr>
 * <tr><td>DESTROY_REGION</td><td>region id</td><td>-</td></tr>
 * <tr><td>LIST_REGIONS</td><td>-</td><td>count, region records</td></tr>
 * <tr><td>CONNECT_QUEUES</td><td>primary, secondary, depth (u32)</td><td>-</td></tr>
 * <tr><td>CONNECT_DOORBELLS</td><td>primary, secondary</td><td>-</td></tr>
 * <tr><td>ASSIGN_BACKEND</td><td>primary, secondary</td><td>credential (16) of a backend process for that pair: before
 *     any grant between them, or to replace a backend that died (refused while one is assigned or attached)</td></tr>
 * <tr><td>SEND</td><td>peer, byte string</td><td>result (u8: 0 OK, 1 FULL)</td></tr>
 * <tr><td>RECEIVE</td><td>peer</td><td>length (i32, -1 = empty), bytes</td></tr>
 * <tr><td>CHECK_DOORBELL</td><td>peer, operation (u8: 0 ring, 1 read/mask)</td><td>- (or the refusal)</td></tr>
 * </table>
 *
 * <p>A response ({@link #RESPONSE}) starts with a status byte: {@link #STATUS_OK} followed by the
 * payload above, {@link #STATUS_REFUSED} followed by a {@link dev.airlock.hypervisor.RefusalReason}
 * ordinal (u8) and a message, or {@link #STATUS_ILLEGAL} followed by a message (a malformed
 * argument: the client throws {@link IllegalArgumentException}).
 *
 * <table>
 * <caption>events (daemon → VM process), request id 0</caption>
 * <tr><th>type</th><th>payload</th><th>descriptors</th></tr>
 * <tr><td>INTERRUPT</td><td>cause (u8, an {@link dev.airlock.hypervisor.InterruptCause} ordinal: a secondary also
 *     receives BACKEND_DETACHED and BACKEND_ATTACHED about its primary when the pair's backend process dies or attaches), peer (u32)</td><td>-</td></tr>
 * <tr><td>STATE</td><td>state (u8)</td><td>-</td></tr>
 * <tr><td>REGION_GRANTED</td><td>region id, peer, name, size, gpa base</td><td>the region's memfd</td></tr>
 * <tr><td>REGION_REVOKED</td><td>region id</td><td>-</td></tr>
 * <tr><td>DOORBELL_GRANTED</td><td>peer</td><td>the pair's doorbell page memfd, eventfd toward this VM, eventfd toward the peer</td></tr>
 * <tr><td>LINKED</td><td>peer: the hypervisor connected this VM with it (a region, queues or doorbells)</td><td>-</td></tr>
 * </table>
 */
public final class WireLayout {
    /** The size of the length field. */
    public static final int LENGTH_LENGTH = 4;
    /** The size of type, zero and request id, after the length field. */
    public static final int HEADER_LENGTH = 12;
    /** The largest value of the length field: a maximal message plus room for its fields. */
    public static final int MAX_FRAME_BYTES = HEADER_LENGTH + 65_536 + 1024;
    /** The most UTF-8 bytes a string field holds. */
    public static final int MAX_STRING_BYTES = 255;
    /** The size of a credential. */
    public static final int CREDENTIAL_LENGTH = 16;

    /** Request: authenticate as a control-plane client. */
    public static final int HELLO_CONTROL = 1;
    /** Request: attach as the VM a credential names. */
    public static final int ATTACH = 2;
    /** Request: create a VM. */
    public static final int CREATE_VM = 3;
    /** Request: start a VM. */
    public static final int START_VM = 4;
    /** Request: stop a VM. */
    public static final int STOP_VM = 5;
    /** Request: destroy a VM. */
    public static final int DESTROY_VM = 6;
    /** Request: list the VMs. */
    public static final int LIST_VMS = 7;
    /** Request: one VM. */
    public static final int VM_INFO = 8;
    /** Request: create a shared region. */
    public static final int CREATE_REGION = 9;
    /** Request: destroy a shared region. */
    public static final int DESTROY_REGION = 10;
    /** Request: list the shared regions. */
    public static final int LIST_REGIONS = 11;
    /** Request: connect message queues. */
    public static final int CONNECT_QUEUES = 12;
    /** Request: connect doorbells. */
    public static final int CONNECT_DOORBELLS = 13;
    /** Request: issue a backend credential for a primary/secondary pair. */
    public static final int ASSIGN_BACKEND = 14;
    /** Request (VM): send a message. */
    public static final int SEND = 20;
    /** Request (VM): receive a message. */
    public static final int RECEIVE = 21;
    /** Request (VM): why a doorbell call would be refused. */
    public static final int CHECK_DOORBELL = 22;
    /** The response to any request. */
    public static final int RESPONSE = 64;
    /** Event: an interrupt. */
    public static final int INTERRUPT = 65;
    /** Event: the VM's state changed. */
    public static final int STATE = 66;
    /** Event: a shared region granted, with its memfd. */
    public static final int REGION_GRANTED = 67;
    /** Event: a shared region destroyed. */
    public static final int REGION_REVOKED = 68;
    /** Event: doorbells connected, with the page and two eventfds. */
    public static final int DOORBELL_GRANTED = 69;
    /** Event: a grant now connects this VM with a peer. */
    public static final int LINKED = 70;

    /** Response status: done. */
    public static final int STATUS_OK = 0;
    /** Response status: refused by the access rules. */
    public static final int STATUS_REFUSED = 1;
    /** Response status: a malformed argument. */
    public static final int STATUS_ILLEGAL = 2;

    private WireLayout() {
    }
}
