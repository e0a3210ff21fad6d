package dev.airlock.virtio;

import java.util.Arrays;

/**
 * A reusable list of the buffers of one request, in the driver's own memory: out buffers (the
 * device reads them) and in buffers (the device writes them). {@link VirtqueueDriver#add} maps
 * each through the queue's DMA operations and places the out buffers before the in buffers, as
 * §2.7.4 requires. Build one per thread and {@link #clear()} it between requests: once its arrays
 * have grown to the largest request, it allocates nothing.
 *
 * <p>A buffer may also be given <em>premapped</em> ({@link #outMapped}, {@link #inMapped}): its
 * address is already a DMA address the device can use, typically inside a coherent buffer the driver
 * allocated from the same DMA operations ({@code DmaOps.allocCoherent}), so the queue neither maps
 * nor unmaps it (Linux's premapped virtqueue buffers). Small control structures that live there
 * (a request header, a status byte) cost no bounce.
 *
 * <p>Not thread-safe.
 */
public final class ScatterGather {
    /** A chain's total length must stay below 2^32 (§2.7.5). */
    static final long MAX_TOTAL_BYTES = 0xffff_ffffL;

    private long[] outGpa;
    private long[] outLength;
    private boolean[] outMapped;
    private long[] inGpa;
    private long[] inLength;
    private boolean[] inMapped;
    private int outCount;
    private int inCount;
    private long outBytes;
    private long inBytes;

    /**
     * Creates an empty list.
     *
     * @param initialCapacity how many buffers of each direction to make room for
     */
    public ScatterGather(int initialCapacity) {
        int capacity = Math.max(1, initialCapacity);
        outGpa = new long[capacity];
        outLength = new long[capacity];
        outMapped = new boolean[capacity];
        inGpa = new long[capacity];
        inLength = new long[capacity];
        inMapped = new boolean[capacity];
    }

    /**
     * Empties the list.
     *
     * @return this
     */
    public ScatterGather clear() {
        outCount = 0;
        inCount = 0;
        outBytes = 0;
        inBytes = 0;
        return this;
    }

    /**
     * Adds a buffer the device reads (VIRTIO "out", device-readable).
     *
     * @param gpa         where it is in the driver's address space
     * @param lengthBytes its length, 1 to 2^32 - 1
     * @return this
     * @throws IllegalArgumentException for a bad length or a total reaching 2^32
     */
    public ScatterGather out(long gpa, long lengthBytes) {
        return addOut(gpa, lengthBytes, false);
    }

    /**
     * Adds a premapped buffer the device reads: the queue puts {@code dmaAddr} in the descriptor as it is.
     *
     * @param dmaAddr     a DMA address the device can read, for example inside a coherent buffer
     * @param lengthBytes its length, 1 to 2^32 - 1
     * @return this
     * @throws IllegalArgumentException for a bad length or a total reaching 2^32
     */
    public ScatterGather outMapped(long dmaAddr, long lengthBytes) {
        return addOut(dmaAddr, lengthBytes, true);
    }

    private ScatterGather addOut(long addr, long lengthBytes, boolean mapped) {
        checkLength(lengthBytes);
        if (outCount == outGpa.length) {
            outGpa = Arrays.copyOf(outGpa, outCount * 2);
            outLength = Arrays.copyOf(outLength, outCount * 2);
            outMapped = Arrays.copyOf(outMapped, outCount * 2);
        }
        outGpa[outCount] = addr;
        outLength[outCount] = lengthBytes;
        outMapped[outCount] = mapped;
        outCount++;
        outBytes += lengthBytes;
        return this;
    }

    /**
     * Adds a buffer the device writes (VIRTIO "in", device-writable).
     *
     * @param gpa         where it is in the driver's address space
     * @param lengthBytes its length, 1 to 2^32 - 1
     * @return this
     * @throws IllegalArgumentException for a bad length or a total reaching 2^32
     */
    public ScatterGather in(long gpa, long lengthBytes) {
        return addIn(gpa, lengthBytes, false);
    }

    /**
     * Adds a premapped buffer the device writes: the queue puts {@code dmaAddr} in the descriptor as it is.
     *
     * @param dmaAddr     a DMA address the device can write, for example inside a coherent buffer
     * @param lengthBytes its length, 1 to 2^32 - 1
     * @return this
     * @throws IllegalArgumentException for a bad length or a total reaching 2^32
     */
    public ScatterGather inMapped(long dmaAddr, long lengthBytes) {
        return addIn(dmaAddr, lengthBytes, true);
    }

    private ScatterGather addIn(long addr, long lengthBytes, boolean mapped) {
        checkLength(lengthBytes);
        if (inCount == inGpa.length) {
            inGpa = Arrays.copyOf(inGpa, inCount * 2);
            inLength = Arrays.copyOf(inLength, inCount * 2);
            inMapped = Arrays.copyOf(inMapped, inCount * 2);
        }
        inGpa[inCount] = addr;
        inLength[inCount] = lengthBytes;
        inMapped[inCount] = mapped;
        inCount++;
        inBytes += lengthBytes;
        return this;
    }

    private void checkLength(long lengthBytes) {
        if (lengthBytes < 1 || lengthBytes > MAX_TOTAL_BYTES) {
            throw new IllegalArgumentException("buffer length must be 1 to 2^32 - 1: " + lengthBytes);
        }
        if (outBytes + inBytes + lengthBytes > MAX_TOTAL_BYTES) {
            throw new IllegalArgumentException("a descriptor chain must total less than 2^32 bytes");
        }
    }

    /**
     * How many buffers the device reads.
     *
     * @return the out count
     */
    public int outCount() {
        return outCount;
    }

    /**
     * How many buffers the device writes.
     *
     * @return the in count
     */
    public int inCount() {
        return inCount;
    }

    /**
     * All buffers.
     *
     * @return out count plus in count
     */
    public int count() {
        return outCount + inCount;
    }

    /**
     * Total length of the in buffers: the most a device may report as used.
     *
     * @return bytes
     */
    public long inBytes() {
        return inBytes;
    }

    /**
     * Total length of the out buffers.
     *
     * @return bytes
     */
    public long outBytes() {
        return outBytes;
    }

    /**
     * The address of buffer {@code i} in chain order (out buffers, then in buffers).
     *
     * @param i 0 to {@code count() - 1}
     * @return its guest-physical address, or its DMA address if {@link #isPremapped premapped}
     */
    public long gpa(int i) {
        return i < outCount ? outGpa[i] : inGpa[i - outCount];
    }

    /**
     * The length of buffer {@code i} in chain order.
     *
     * @param i 0 to {@code count() - 1}
     * @return its length in bytes
     */
    public long lengthBytes(int i) {
        return i < outCount ? outLength[i] : inLength[i - outCount];
    }

    /**
     * Whether buffer {@code i} in chain order is device-writable.
     *
     * @param i 0 to {@code count() - 1}
     * @return true for an in buffer
     */
    public boolean isWritable(int i) {
        return i >= outCount;
    }

    /**
     * Whether buffer {@code i} in chain order was given as a DMA address.
     *
     * @param i 0 to {@code count() - 1}
     * @return true if the queue must not map it
     */
    public boolean isPremapped(int i) {
        return i < outCount ? outMapped[i] : inMapped[i - outCount];
    }
}
