package dev.airlock.vhostuser;

import dev.airlock.memory.SharedMemory;
import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.UnixSocket;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

/**
 * A small vhost-user front-end for tests: raw messages (any size, flags, fds), guest memory in a
 * memfd, and a hand-written split ring (queue 0 by default) in it, driven like a guest driver would.
 */
final class TestFrontend implements AutoCloseable {
    static final long GPA_BASE = 0x100000;
    static final long UVA_BASE = 0x7f1200000000L;
    static final long MEM_BYTES = 1 << 20;
    static final long DESC_OFFSET = 0x1000;
    static final long AVAIL_OFFSET = 0x3000;
    static final long USED_OFFSET = 0x4000;
    static final long DATA_OFFSET = 0x10000;
    static final int QUEUE_SIZE = 16;

    final SharedMemory guest;
    final UnixSocket socket;
    final int kickFd = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
    final int callFd = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
    final int errFd = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
    private final boolean ownsGuest;
    private int availIdx;

    /** A reply. */
    record Reply(int request, int flags, byte[] payload, int[] fds) {
        long u64() {
            return ByteBuffer.wrap(payload).order(ByteOrder.nativeOrder()).getLong();
        }

        int u32(int offset) {
            return ByteBuffer.wrap(payload).order(ByteOrder.nativeOrder()).getInt(offset);
        }
    }

    TestFrontend(Path path, SharedMemory guest) {
        this.socket = UnixSocket.connect(path);
        this.ownsGuest = guest == null;
        this.guest = guest == null ? SharedMemory.create("test-guest", MEM_BYTES) : guest;
    }

    TestFrontend(Path path) {
        this(path, null);
    }

    // ---------------------------------------------------------------- raw messages

    void send(int request, int flags, byte[] payload, int... fds) {
        ByteBuffer b = ByteBuffer.allocate(12 + payload.length).order(ByteOrder.nativeOrder());
        b.putInt(request).putInt(flags).putInt(payload.length).put(payload);
        socket.send(b.array(), fds);
    }

    void send(int request, byte[] payload, int... fds) {
        send(request, 1, payload, fds);
    }

    /** Reads one reply, or null at end of stream (the back-end closed the connection). */
    Reply receive() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment header = arena.allocate(12);
            int[] fds = socket.receiveFully(header);
            if (fds == null) {
                return null;
            }
            int size = header.get(ValueLayout.JAVA_INT, 8);
            byte[] payload = new byte[size];
            if (size > 0) {
                MemorySegment body = arena.allocate(size);
                socket.receiveFully(body);
                MemorySegment.copy(body, 0, MemorySegment.ofArray(payload), 0, size);
            }
            return new Reply(header.get(ValueLayout.JAVA_INT, 0), header.get(ValueLayout.JAVA_INT, 4), payload, fds);
        } catch (dev.airlock.memory.sys.NativeCallException e) {
            if (e.getMessage().contains("ECONNRESET")) {
                return null; // the back-end closed with our data unread: closed as well
            }
            throw e;
        }
    }

    Reply call(int request, byte[] payload, int... fds) {
        send(request, payload, fds);
        return receive();
    }

    static byte[] u64(long v) {
        return ByteBuffer.allocate(8).order(ByteOrder.nativeOrder()).putLong(v).array();
    }

    static byte[] state(int index, int num) {
        return ByteBuffer.allocate(8).order(ByteOrder.nativeOrder()).putInt(index).putInt(num).array();
    }

    static byte[] addr(int index, int flags, long desc, long used, long avail) {
        return ByteBuffer.allocate(40).order(ByteOrder.nativeOrder()).putInt(index).putInt(flags)
                .putLong(desc).putLong(used).putLong(avail).putLong(0).array();
    }

    /** A SET_MEM_TABLE payload: each region as {gpa, size, uva, mmapOffset}. */
    static byte[] memTable(long[]... regions) {
        ByteBuffer b = ByteBuffer.allocate(8 + 32 * regions.length).order(ByteOrder.nativeOrder());
        b.putInt(regions.length).putInt(0);
        for (long[] r : regions) {
            b.putLong(r[0]).putLong(r[1]).putLong(r[2]).putLong(r[3]);
        }
        return b.array();
    }

    static byte[] singleRegion(long gpa, long size, long uva, long mmapOffset) {
        return ByteBuffer.allocate(40).order(ByteOrder.nativeOrder()).putLong(0).putLong(gpa).putLong(size)
                .putLong(uva).putLong(mmapOffset).array();
    }

    static byte[] inflight(long mmapSize, long mmapOffset, int queues, int queueSize) {
        return ByteBuffer.allocate(24).order(ByteOrder.nativeOrder()).putLong(mmapSize).putLong(mmapOffset)
                .putShort((short) queues).putShort((short) queueSize).putInt(0).array();
    }

    /** The standard memory table: all of guest memory at GPA_BASE / UVA_BASE. */
    byte[] standardMemTable() {
        return memTable(new long[] {GPA_BASE, MEM_BYTES, UVA_BASE, 0});
    }

    // ---------------------------------------------------------------- handshakes

    /** Features, protocol features (REPLY_ACK etc.), owner and memory table. */
    void negotiate(long protocolFeatures) {
        long features = call(VhostUserRequest.GET_FEATURES, new byte[0]).u64();
        long protocol = call(VhostUserRequest.GET_PROTOCOL_FEATURES, new byte[0]).u64();
        send(VhostUserRequest.SET_PROTOCOL_FEATURES, u64(protocol & protocolFeatures));
        send(VhostUserRequest.SET_OWNER, new byte[0]);
        send(VhostUserRequest.SET_FEATURES, u64(features));
        send(VhostUserRequest.SET_MEM_TABLE, 1 | 8, standardMemTable(), guest.fd());
        Reply ack = receive();
        if (ack == null || ack.u64() != 0) {
            throw new AssertionError("SET_MEM_TABLE not acknowledged: " + ack);
        }
    }

    /** Sets queue 0 up at {@code base} and enables it. */
    void startQueue(int base) {
        send(VhostUserRequest.SET_VRING_NUM, state(0, QUEUE_SIZE));
        send(VhostUserRequest.SET_VRING_BASE, state(0, base));
        send(VhostUserRequest.SET_VRING_ADDR, addr(0, 0, UVA_BASE + DESC_OFFSET, UVA_BASE + USED_OFFSET, UVA_BASE + AVAIL_OFFSET));
        send(VhostUserRequest.SET_VRING_KICK, u64(0), kickFd);
        send(VhostUserRequest.SET_VRING_CALL, u64(0), callFd);
        send(VhostUserRequest.SET_VRING_ERR, u64(0), errFd);
        send(VhostUserRequest.SET_VRING_ENABLE, state(0, 1));
    }

    /** The full setup with every supported protocol feature: returns after queue 0 runs. */
    void setUp() {
        negotiate(-1L);
        startQueue(0);
    }

    // ---------------------------------------------------------------- the driver side of queue 0

    MemorySegment mem() {
        return guest.segment();
    }

    void desc(int index, long gpa, int length, int flags, int next) {
        long base = DESC_OFFSET + 16L * index;
        mem().set(ValueLayout.JAVA_LONG_UNALIGNED, base, gpa);
        mem().set(ValueLayout.JAVA_INT_UNALIGNED, base + 8, length);
        mem().set(ValueLayout.JAVA_SHORT_UNALIGNED, base + 12, (short) flags);
        mem().set(ValueLayout.JAVA_SHORT_UNALIGNED, base + 14, (short) next);
    }

    /** Puts a two-descriptor echo request at head {@code head} (uses descriptors head and head+1). */
    void echoRequest(int head, byte[] data) {
        long in = GPA_BASE + DATA_OFFSET + 0x1000L * head;
        MemorySegment.copy(MemorySegment.ofArray(data), 0, mem(), in - GPA_BASE, data.length);
        desc(head, in, data.length, 1, head + 1);
        desc(head + 1, in + 0x800, data.length, 2, 0);
    }

    byte[] echoReply(int head, int length) {
        byte[] out = new byte[length];
        MemorySegment.copy(mem(), GPA_BASE + DATA_OFFSET + 0x1000L * head + 0x800 - GPA_BASE, MemorySegment.ofArray(out), 0, length);
        return out;
    }

    void makeAvailable(int head) {
        mem().set(ValueLayout.JAVA_SHORT_UNALIGNED, AVAIL_OFFSET + 4 + 2L * (availIdx % QUEUE_SIZE), (short) head);
        availIdx = (availIdx + 1) & 0xffff;
        java.lang.invoke.VarHandle.releaseFence();
        mem().set(ValueLayout.JAVA_SHORT_UNALIGNED, AVAIL_OFFSET + 2, (short) availIdx);
    }

    void setAvailIdx(int idx) {
        availIdx = idx;
        mem().set(ValueLayout.JAVA_SHORT_UNALIGNED, AVAIL_OFFSET + 2, (short) idx);
    }

    void kick() {
        Linux.eventfdWrite(kickFd, 1);
    }

    int usedIdx() {
        java.lang.invoke.VarHandle.acquireFence();
        return mem().get(ValueLayout.JAVA_SHORT_UNALIGNED, USED_OFFSET + 2) & 0xffff;
    }

    int usedId(int slot) {
        return mem().get(ValueLayout.JAVA_INT_UNALIGNED, USED_OFFSET + 4 + 8L * slot);
    }

    int usedLen(int slot) {
        return mem().get(ValueLayout.JAVA_INT_UNALIGNED, USED_OFFSET + 8 + 8L * slot);
    }

    /** Waits until the used idx reaches {@code idx}. */
    boolean awaitUsed(int idx, long timeoutMs) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (usedIdx() != idx) {
            if (System.currentTimeMillis() > deadline) {
                return false;
            }
            Thread.sleep(2);
        }
        return true;
    }

    /** Waits until the used idx reaches {@code idx}, spinning (for latency measurements). */
    boolean awaitUsedSpinning(int idx, long timeoutMs) {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        while (usedIdx() != idx) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.onSpinWait();
        }
        return true;
    }

    /** Reads and clears an eventfd the back-end signals (non-blocking): its counter. */
    static long drain(int fd) {
        return Linux.eventfdRead(fd);
    }

    @Override
    public void close() {
        socket.shutdown();
        socket.close();
        Linux.close(kickFd);
        Linux.close(callFd);
        Linux.close(errFd);
        if (ownsGuest) {
            guest.close();
        }
    }
}
