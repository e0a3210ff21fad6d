package dev.airlock.vhostuser;

import dev.airlock.devices.blk.BlkConfigLayout;
import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.UnixSocket;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A hostile vhost-user-blk backend for frontend tests, hostile in the rings rather than in the
 * messages (for that, see {@link ScriptedBackend}). It answers the whole protocol like a
 * well-behaved backend: VERSION_1 and PROTOCOL_FEATURES; REPLY_ACK, CONFIG and MQ with one queue; a
 * virtio_blk_config; an ack of 0 for every request that asks; it maps the memory table's fd and
 * follows SET_VRING_NUM/BASE/ADDR/KICK/CALL/ENABLE and GET_VRING_BASE, across resets.
 *
 * <p>On each kick it reads the new avail entries of queue 0 (VIRTIO 1.2 §2.7.6) and for each
 * head fills the chain's device-writable buffers with {@code 0xa5}, with a last byte of 0
 * (VIRTIO_BLK_S_OK, so a driver that accepted the entry would see success), then writes one used
 * element (§2.7.8) spoiled as {@link Misbehaviour} says, publishes used idx and signals the call
 * eventfd. Apart from {@link Misbehaviour#NONE}, it never completes a request properly.
 *
 * <p>One thread polls the socket and the kick eventfd, so the ring state needs no locks; the
 * frontend in the same process is trusted not to lie about its own rings (walks are still bounded
 * by the queue size).
 */
final class HostileRingBackend implements AutoCloseable {
    /** How the used element of each available chain is spoiled. */
    enum Misbehaviour {
        /** None: a correct used element (id = head, len = the writable bytes); the control case. */
        NONE,
        /** The used id is the queue size plus 3: out of range. */
        BAD_ID,
        /** The used id is in range but not a head the driver made available (the head's next descriptor, typically). */
        NOT_IN_FLIGHT_ID,
        /** The right id, with len {@link #TOO_LONG_LENGTH}: more than the chain's device-writable bytes. */
        TOO_LONG,
        /** A correct used element, but used idx moves by the queue size plus one. */
        USED_IDX_JUMP
    }

    /** VIRTIO_F_VERSION_1, VHOST_USER_F_PROTOCOL_FEATURES, SEG_MAX, BLK_SIZE and FLUSH; no indirect or event idx. */
    static final long FEATURES = 1L << 32 | 1L << VhostUserRequest.F_PROTOCOL_FEATURES
            | 1L << BlkConfigLayout.VIRTIO_BLK_F_SEG_MAX | 1L << BlkConfigLayout.VIRTIO_BLK_F_BLK_SIZE
            | 1L << BlkConfigLayout.VIRTIO_BLK_F_FLUSH;
    static final long PROTOCOL = 1L << VhostUserRequest.PROTOCOL_F_MQ | 1L << VhostUserRequest.PROTOCOL_F_REPLY_ACK
            | 1L << VhostUserRequest.PROTOCOL_F_CONFIG;
    static final long CAPACITY_SECTORS = (64L << 20) / 512;
    static final int SEG_MAX = 126;
    static final int BLK_SIZE = 512;
    /** The used len of {@link Misbehaviour#TOO_LONG}. */
    static final long TOO_LONG_LENGTH = 0x7fff_ffffL;
    /** What the device writes into writable buffers. */
    static final byte SCRIBBLE = (byte) 0xa5;

    // Split virtqueue layout, VIRTIO 1.2 §2.7.5 (descriptor), §2.7.6 (avail), §2.7.8 (used); little-endian.
    private static final int DESC_LENGTH = 16;
    private static final long DESC_ADDR_OFFSET = 0;
    private static final long DESC_LEN_OFFSET = 8;
    private static final long DESC_FLAGS_OFFSET = 12;
    private static final long DESC_NEXT_OFFSET = 14;
    private static final int VIRTQ_DESC_F_NEXT = 1;
    private static final int VIRTQ_DESC_F_WRITE = 2;
    private static final long AVAIL_IDX_OFFSET = 2;
    private static final long AVAIL_RING_OFFSET = 4;
    private static final long USED_IDX_OFFSET = 2;
    private static final long USED_RING_OFFSET = 4;
    private static final int USED_ELEM_LENGTH = 8;
    private static final long USED_ELEM_ID_OFFSET = 0;
    private static final long USED_ELEM_LEN_OFFSET = 4;

    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** avail.idx and used.idx: aligned 16-bit, coordinates (segment, offset). */
    private static final VarHandle IDX = LE16.varHandle();

    private static final int POLL_TIMEOUT_MS = 100;
    private static final int MAX_PAYLOAD_LENGTH = 4096;

    private final Misbehaviour misbehaviour;
    private final UnixSocket listener;
    private final Thread thread;
    private final GuestMemoryTable table = new GuestMemoryTable("hostile-ring");
    private final Ring ring = new Ring();
    private final AtomicInteger misbehaviours = new AtomicInteger();
    private volatile UnixSocket connection;
    private volatile boolean stopping;
    private volatile Throwable failure;

    /** Queue 0 as the frontend set it up; used by the backend thread only. */
    private static final class Ring {
        int size;
        long descUva;
        long availUva;
        long usedUva;
        MemorySegment desc;
        MemorySegment avail;
        MemorySegment used;
        int kickFd = -1;
        int callFd = -1;
        boolean enabled;
        boolean started;
        int nextAvail;
        int usedIdx;
        /** Heads made available since the ring was (re)started: in flight as far as the driver knows. */
        boolean[] offered = new boolean[0];

        boolean ready() {
            return started && enabled && desc != null && callFd >= 0;
        }
    }

    /**
     * Listens on {@code path} and serves one connection on a daemon thread.
     *
     * @param path         the socket to create
     * @param misbehaviour how to spoil each used element
     */
    HostileRingBackend(Path path, Misbehaviour misbehaviour) {
        this.misbehaviour = misbehaviour;
        this.listener = UnixSocket.listen(path, 1);
        this.thread = Thread.ofPlatform().daemon().name("hostile-ring-backend").start(this::serve);
    }

    /** How many used elements were published (spoiled unless {@link Misbehaviour#NONE}). */
    int misbehaviours() {
        return misbehaviours.get();
    }

    /** What stopped the backend thread other than the frontend hanging up, or null. */
    Throwable failure() {
        return failure;
    }

    // ---------------------------------------------------------------- the loop

    private void serve() {
        try (UnixSocket s = listener.accept(); Arena arena = Arena.ofConfined()) {
            connection = s;
            MemorySegment pollfds = arena.allocate(2 * Linux.POLLFD_LENGTH, 8);
            MemorySegment header = arena.allocate(VhostUserHeaderLayout.HEADER_LENGTH);
            MemorySegment payload = arena.allocate(MAX_PAYLOAD_LENGTH);
            while (!stopping) {
                int count = pollEntry(pollfds, 0, s.fd());
                if (ring.kickFd >= 0) {
                    count = pollEntry(pollfds, count, ring.kickFd);
                }
                if (Linux.poll(pollfds, count, POLL_TIMEOUT_MS) <= 0) {
                    continue;
                }
                if (revents(pollfds, 0) != 0 && !onMessage(s, header, payload)) {
                    return; // the frontend hung up
                }
                if (count == 2 && (revents(pollfds, 1) & Linux.POLLIN) != 0 && ring.kickFd >= 0) {
                    Linux.eventfdRead(ring.kickFd);
                    onKick();
                }
            }
        } catch (RuntimeException e) {
            if (!stopping) {
                failure = e; // a broken connection mid-message ends up here too; tests print it on failure
            }
        } finally {
            closeFd(ring.kickFd);
            closeFd(ring.callFd);
            ring.kickFd = -1;
            ring.callFd = -1;
            table.close();
        }
    }

    private static int pollEntry(MemorySegment pollfds, int index, int fd) {
        long base = index * Linux.POLLFD_LENGTH;
        pollfds.set(ValueLayout.JAVA_INT, base, fd);
        pollfds.set(ValueLayout.JAVA_SHORT, base + 4, Linux.POLLIN);
        pollfds.set(ValueLayout.JAVA_SHORT, base + 6, (short) 0);
        return index + 1;
    }

    private static short revents(MemorySegment pollfds, int index) {
        return pollfds.get(ValueLayout.JAVA_SHORT, index * Linux.POLLFD_LENGTH + 6);
    }

    /** Reads one message and answers it; false when the frontend has closed the connection. */
    private boolean onMessage(UnixSocket s, MemorySegment header, MemorySegment payload) {
        int[] fds = s.receiveFully(header);
        if (fds == null) {
            return false;
        }
        int request = header.get(ValueLayout.JAVA_INT, VhostUserHeaderLayout.REQUEST_OFFSET);
        int flags = header.get(ValueLayout.JAVA_INT, VhostUserHeaderLayout.FLAGS_OFFSET);
        int size = header.get(ValueLayout.JAVA_INT, VhostUserHeaderLayout.SIZE_OFFSET);
        try {
            if (size < 0 || size > MAX_PAYLOAD_LENGTH) {
                throw new IllegalStateException(VhostUserRequest.name(request) + " with a payload of " + size + " bytes");
            }
            MemorySegment body = payload.asSlice(0, size);
            if (size > 0) {
                int[] more = s.receiveFully(body);
                if (more == null) {
                    return false;
                }
                fds = concat(fds, more);
            }
            answer(s, request, flags, body, fds);
            return true;
        } finally {
            for (int fd : fds) {
                closeFd(fd); // those a handler kept are -1
            }
        }
    }

    private static int[] concat(int[] a, int[] b) {
        int[] all = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    /** Handles one request; a handler that keeps an fd sets its slot in {@code fds} to -1. */
    private void answer(UnixSocket s, int request, int flags, MemorySegment body, int[] fds) {
        byte[] reply = switch (request) {
            case VhostUserRequest.GET_FEATURES -> u64(FEATURES);
            case VhostUserRequest.GET_PROTOCOL_FEATURES -> u64(PROTOCOL);
            case VhostUserRequest.GET_QUEUE_NUM -> u64(1);
            case VhostUserRequest.GET_CONFIG -> config(body);
            case VhostUserRequest.GET_VRING_BASE -> stopRing(body);
            default -> {
                long ack = set(request, body, fds) ? 0 : 1;
                yield (flags & VhostUserHeaderLayout.FLAG_NEED_REPLY) != 0 ? u64(ack) : null;
            }
        };
        if (reply != null) {
            s.send(ByteBuffer.allocate(VhostUserHeaderLayout.HEADER_LENGTH + reply.length).order(ByteOrder.nativeOrder())
                    .putInt(request).putInt(VhostUserHeaderLayout.VERSION | VhostUserHeaderLayout.FLAG_REPLY)
                    .putInt(reply.length).put(reply).array());
        }
    }

    /** A request without a reply of its own; returns whether it succeeded (the REPLY_ACK). */
    private boolean set(int request, MemorySegment body, int[] fds) {
        return switch (request) {
            case VhostUserRequest.SET_MEM_TABLE -> setMemTable(body, fds);
            case VhostUserRequest.SET_VRING_NUM -> {
                ring.size = stateNum(body);
                ring.offered = new boolean[ring.size];
                yield stateIndex(body) == 0 && ring.size > 0 && Integer.bitCount(ring.size) == 1;
            }
            case VhostUserRequest.SET_VRING_BASE -> {
                ring.nextAvail = stateNum(body) & 0xffff;
                ring.usedIdx = ring.nextAvail;
                yield stateIndex(body) == 0;
            }
            case VhostUserRequest.SET_VRING_ADDR -> setVringAddr(body);
            case VhostUserRequest.SET_VRING_KICK -> {
                closeFd(ring.kickFd);
                ring.kickFd = takeFd(fds);
                ring.started = ring.kickFd >= 0;
                yield ring.started;
            }
            case VhostUserRequest.SET_VRING_CALL -> {
                closeFd(ring.callFd);
                ring.callFd = takeFd(fds);
                yield ring.callFd >= 0;
            }
            case VhostUserRequest.SET_VRING_ENABLE -> {
                ring.enabled = stateNum(body) == 1;
                yield stateIndex(body) == 0;
            }
            default -> true; // SET_FEATURES, SET_PROTOCOL_FEATURES, SET_OWNER, ...
        };
    }

    private boolean setMemTable(MemorySegment body, int[] fds) {
        table.close(); // a new table replaces the old one
        int regions = body.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserMemoryRegionLayout.NREGIONS_OFFSET);
        if (regions != fds.length || body.byteSize() != VhostUserMemoryRegionLayout.tableLength(regions)) {
            return false;
        }
        for (int r = 0; r < regions; r++) {
            long base = VhostUserMemoryRegionLayout.tableLength(r);
            int fd = fds[r];
            fds[r] = -1; // GuestMemoryTable.add closes it
            table.add("SET_MEM_TABLE.regions[" + r + "]",
                    body.get(ValueLayout.JAVA_LONG_UNALIGNED, base + VhostUserMemoryRegionLayout.GUEST_PHYS_ADDR_OFFSET),
                    body.get(ValueLayout.JAVA_LONG_UNALIGNED, base + VhostUserMemoryRegionLayout.MEMORY_SIZE_OFFSET),
                    body.get(ValueLayout.JAVA_LONG_UNALIGNED, base + VhostUserMemoryRegionLayout.USERSPACE_ADDR_OFFSET),
                    body.get(ValueLayout.JAVA_LONG_UNALIGNED, base + VhostUserMemoryRegionLayout.MMAP_OFFSET_OFFSET), fd);
        }
        return true;
    }

    /** Records the rings' user addresses and maps them through the memory table (SET_VRING_NUM came first). */
    private boolean setVringAddr(MemorySegment body) {
        if (body.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserVringLayout.ADDR_INDEX_OFFSET) != 0 || ring.size == 0) {
            return false;
        }
        ring.descUva = body.get(ValueLayout.JAVA_LONG_UNALIGNED, VhostUserVringLayout.ADDR_DESC_OFFSET);
        ring.usedUva = body.get(ValueLayout.JAVA_LONG_UNALIGNED, VhostUserVringLayout.ADDR_USED_OFFSET);
        ring.availUva = body.get(ValueLayout.JAVA_LONG_UNALIGNED, VhostUserVringLayout.ADDR_AVAIL_OFFSET);
        ring.desc = userRange("desc_user_addr", ring.descUva, (long) DESC_LENGTH * ring.size);
        ring.avail = userRange("avail_user_addr", ring.availUva, AVAIL_RING_OFFSET + 2L * ring.size + 2);
        ring.used = userRange("used_user_addr", ring.usedUva, USED_RING_OFFSET + (long) USED_ELEM_LENGTH * ring.size + 2);
        return true;
    }

    private MemorySegment userRange(String field, long uva, long lengthBytes) {
        return table.space().translate(table.uvaToGpa(field, uva, lengthBytes), lengthBytes);
    }

    /** GET_VRING_BASE: stops the ring and reports the next avail index to read. */
    private byte[] stopRing(MemorySegment body) {
        ring.started = false;
        ring.enabled = false;
        return state(stateIndex(body), ring.nextAvail);
    }

    /** GET_CONFIG: the requested slice of a virtio_blk_config (VIRTIO 1.2 §5.2.4), after the echoed header. */
    private static byte[] config(MemorySegment body) {
        ByteBuffer c = ByteBuffer.allocate(VhostUserConfigLayout.MAX_CONFIG_LENGTH).order(ByteOrder.LITTLE_ENDIAN);
        c.putLong(BlkConfigLayout.CAPACITY_OFFSET, CAPACITY_SECTORS);
        c.putInt(BlkConfigLayout.SEG_MAX_OFFSET, SEG_MAX);
        c.putInt(BlkConfigLayout.BLK_SIZE_OFFSET, BLK_SIZE);
        c.putShort(BlkConfigLayout.NUM_QUEUES_OFFSET, (short) 1);
        int offset = body.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.OFFSET_OFFSET);
        int size = body.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.SIZE_OFFSET);
        byte[] reply = body.toArray(ValueLayout.JAVA_BYTE);
        if (offset >= 0 && size >= 0 && offset + size <= c.capacity()
                && reply.length == VhostUserConfigLayout.HEADER_LENGTH + size) {
            c.get(offset, reply, VhostUserConfigLayout.HEADER_LENGTH, size);
        }
        return reply;
    }

    // ---------------------------------------------------------------- the ring

    /** A kick: every head made available since the last one gets one spoiled used element. */
    private void onKick() {
        if (!ring.ready()) {
            return;
        }
        // Pairs with the driver's setRelease of avail.idx (§2.7.13.3): the ring entries and descriptors below it are visible.
        int availIdx = (short) IDX.getAcquire(ring.avail, AVAIL_IDX_OFFSET) & 0xffff;
        int mask = ring.size - 1;
        for (int n = 0; n < ring.size && ring.nextAvail != availIdx; n++) {
            int head = ring.avail.get(LE16, AVAIL_RING_OFFSET + 2L * (ring.nextAvail & mask)) & 0xffff;
            ring.nextAvail = (ring.nextAvail + 1) & 0xffff;
            if (head < ring.size) {
                ring.offered[head] = true;
                misbehave(head);
            }
        }
    }

    private void misbehave(int head) {
        long writable = scribble(head);
        long id = head;
        long length = writable;
        int idxStep = 1;
        switch (misbehaviour) {
            case NONE -> { }
            case BAD_ID -> id = ring.size + 3L;
            case NOT_IN_FLIGHT_ID -> id = notAHead(head);
            case TOO_LONG -> length = TOO_LONG_LENGTH;
            case USED_IDX_JUMP -> idxStep = ring.size + 1;
        }
        long elem = USED_RING_OFFSET + (long) USED_ELEM_LENGTH * (ring.usedIdx & (ring.size - 1));
        ring.used.set(LE32, elem + USED_ELEM_ID_OFFSET, (int) id);
        ring.used.set(LE32, elem + USED_ELEM_LEN_OFFSET, (int) length);
        ring.usedIdx = (ring.usedIdx + idxStep) & 0xffff;
        // Publishes the used element above; pairs with the getAcquire of used.idx in VirtqueueDriver.reap.
        IDX.setRelease(ring.used, USED_IDX_OFFSET, (short) ring.usedIdx);
        misbehaviours.incrementAndGet();
        Linux.eventfdWrite(ring.callFd, 1);
    }

    /** The first id after {@code head} (cyclically) that the driver has not made available. */
    private int notAHead(int head) {
        for (int k = 1; k < ring.size; k++) {
            int id = (head + k) & (ring.size - 1);
            if (!ring.offered[id]) {
                return id;
            }
        }
        throw new IllegalStateException("every descriptor of queue 0 is a head in flight");
    }

    /**
     * Fills the chain's device-writable buffers with {@link #SCRIBBLE} and a last byte of 0
     * (VIRTIO_BLK_S_OK); returns their total length. Walks at most the queue size descriptors.
     */
    private long scribble(int head) {
        long writable = 0;
        MemorySegment last = null;
        int i = head;
        for (int n = 0; n < ring.size; n++) {
            long base = (long) DESC_LENGTH * i;
            long addr = ring.desc.get(LE64, base + DESC_ADDR_OFFSET);
            long length = Integer.toUnsignedLong(ring.desc.get(LE32, base + DESC_LEN_OFFSET));
            int flags = ring.desc.get(LE16, base + DESC_FLAGS_OFFSET) & 0xffff;
            int next = ring.desc.get(LE16, base + DESC_NEXT_OFFSET) & 0xffff;
            if ((flags & VIRTQ_DESC_F_WRITE) != 0 && length > 0) {
                last = table.space().translate(addr, length);
                last.fill(SCRIBBLE);
                writable += length;
            }
            if ((flags & VIRTQ_DESC_F_NEXT) == 0 || next >= ring.size) {
                break;
            }
            i = next;
        }
        if (last != null) {
            last.set(ValueLayout.JAVA_BYTE, last.byteSize() - 1, (byte) 0);
        }
        return writable;
    }

    // ---------------------------------------------------------------- helpers

    private static int stateIndex(MemorySegment body) {
        return body.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserVringLayout.STATE_INDEX_OFFSET);
    }

    private static int stateNum(MemorySegment body) {
        return body.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserVringLayout.STATE_NUM_OFFSET);
    }

    private static byte[] state(int index, int num) {
        return ByteBuffer.allocate(VhostUserVringLayout.STATE_LENGTH).order(ByteOrder.nativeOrder())
                .putInt(index).putInt(num).array();
    }

    private static byte[] u64(long value) {
        return ByteBuffer.allocate(Long.BYTES).order(ByteOrder.nativeOrder()).putLong(value).array();
    }

    /** Takes the first fd of a message (SET_VRING_KICK/CALL carry one), or -1. */
    private static int takeFd(int[] fds) {
        for (int k = 0; k < fds.length; k++) {
            if (fds[k] >= 0) {
                int fd = fds[k];
                fds[k] = -1;
                return fd;
            }
        }
        return -1;
    }

    private static void closeFd(int fd) {
        if (fd >= 0) {
            Linux.close(fd);
        }
    }

    /** Hangs up on the frontend, stops the thread and closes the listening socket. */
    @Override
    public void close() throws InterruptedException {
        stopping = true;
        UnixSocket c = connection;
        if (c != null) {
            quietly(c::shutdown);
        }
        quietly(listener::shutdown);
        thread.join(5_000);
        listener.close();
    }

    private static void quietly(Runnable r) {
        try {
            r.run();
        } catch (RuntimeException e) {
            // closed already
        }
    }
}
