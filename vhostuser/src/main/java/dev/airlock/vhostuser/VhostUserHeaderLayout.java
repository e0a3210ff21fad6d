package dev.airlock.vhostuser;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * The header of every vhost-user message (QEMU docs/interop/vhost-user.rst, "Header"), in the
 * host's byte order, followed by {@code size} bytes of payload.
 *
 * <pre>
 *  0               4               8               12
 *  +---------------+---------------+---------------+
 *  | request (u32) | flags (u32)   | size (u32)    |  payload[size] ...
 *  +---------------+---------------+---------------+
 *
 *  flags:  bits 0-1  version, always 1
 *          bit  2    REPLY       set on every reply from the back-end
 *          bit  3    NEED_REPLY  the front-end wants a REPLY_ACK (u64 0 = success)
 *          bits 4-31 reserved, zero
 * </pre>
 *
 * <table>
 *   <caption>Who writes and reads each field</caption>
 *   <tr><th>field</th><th>request (front-end → back-end)</th><th>reply (back-end → front-end)</th></tr>
 *   <tr><td>request</td><td>front-end writes, back-end validates</td><td>back-end echoes the request</td></tr>
 *   <tr><td>flags</td><td>version 1, NEED_REPLY optional</td><td>version 1 | REPLY</td></tr>
 *   <tr><td>size</td><td>exactly the payload the request defines</td><td>the reply payload</td></tr>
 * </table>
 *
 * <p>Messages are copied out of the socket into private memory, so plain accesses suffice.
 */
final class VhostUserHeaderLayout {
    /** The header. */
    static final StructLayout LAYOUT = MemoryLayout.structLayout(
            JAVA_INT.withName("request"),
            JAVA_INT.withName("flags"),
            JAVA_INT.withName("size"));
    static final long REQUEST_OFFSET = LAYOUT.byteOffset(groupElement("request"));
    static final long FLAGS_OFFSET = LAYOUT.byteOffset(groupElement("flags"));
    static final long SIZE_OFFSET = LAYOUT.byteOffset(groupElement("size"));
    static final int HEADER_LENGTH = 12;

    static final int VERSION_MASK = 0x3;
    static final int VERSION = 0x1;
    static final int FLAG_REPLY = 0x4;
    static final int FLAG_NEED_REPLY = 0x8;
    /** Every bit a request may carry. */
    static final int REQUEST_FLAGS_MASK = VERSION_MASK | FLAG_NEED_REPLY;

    /** The largest payload accepted: a GET_CONFIG of 256 bytes plus its 12-byte header is the largest request. */
    static final int MAX_PAYLOAD_LENGTH = 4096;

    static {
        if (LAYOUT.byteSize() != HEADER_LENGTH) {
            throw new ExceptionInInitializerError("vhost-user header is " + LAYOUT.byteSize() + " bytes, not 12");
        }
    }

    private VhostUserHeaderLayout() {
    }
}
