package dev.airlock.virtio;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A descriptor chain the device has taken from the available ring and validated in full
 * (VIRTIO 1.2 §2.7.5): its head index and its buffers as checked {@link GuestRange}s, the
 * device-readable ones first, then the device-writable ones.
 *
 * <p><b>Ownership.</b> {@link VirtqueueDevice#pop()} hands the chain to the caller, who owns it until
 * it passes it to {@link VirtqueueDevice#addUsed}. After that the queue reuses the object for the
 * next chain with the same head, so the caller must not keep it (or call its methods) past
 * {@code addUsed}. Each head has one object, allocated on first use; popping allocates only the
 * {@link GuestRange}s.
 */
public final class DescriptorChain {
    private final VirtqueueDevice queue;
    private final int head;
    private GuestRange[] readable = new GuestRange[2];
    private GuestRange[] writable = new GuestRange[2];
    private int readableCount;
    private int writableCount;
    private long readableBytes;
    private long writableBytes;
    private int descriptorCount;

    DescriptorChain(VirtqueueDevice queue, int head) {
        this.queue = queue;
        this.head = head;
    }

    void reset() {
        Arrays.fill(readable, 0, readableCount, null);
        Arrays.fill(writable, 0, writableCount, null);
        readableCount = 0;
        writableCount = 0;
        readableBytes = 0;
        writableBytes = 0;
        descriptorCount = 0;
    }

    void addReadable(GuestRange range) {
        if (readableCount == readable.length) {
            readable = Arrays.copyOf(readable, readableCount * 2);
        }
        readable[readableCount++] = range;
        readableBytes += range.lengthBytes();
    }

    void addWritable(GuestRange range) {
        if (writableCount == writable.length) {
            writable = Arrays.copyOf(writable, writableCount * 2);
        }
        writable[writableCount++] = range;
        writableBytes += range.lengthBytes();
    }

    void setDescriptorCount(int count) {
        descriptorCount = count;
    }

    VirtqueueDevice queue() {
        return queue;
    }

    /**
     * The head index: the id the used element carries back.
     *
     * @return the head descriptor's index in the descriptor table
     */
    public int head() {
        return head;
    }

    /**
     * Buffer descriptors in the chain, zero-length ones included (not the indirect pointer).
     *
     * @return the count
     */
    public int descriptorCount() {
        return descriptorCount;
    }

    /**
     * How many device-readable buffers there are (zero-length descriptors are left out).
     *
     * @return the count
     */
    public int readableCount() {
        return readableCount;
    }

    /**
     * A device-readable buffer.
     *
     * @param i 0 to {@link #readableCount()} - 1
     * @return the range
     * @throws IndexOutOfBoundsException for a bad index
     */
    public GuestRange readable(int i) {
        return readable[Objects.checkIndex(i, readableCount)];
    }

    /**
     * How many device-writable buffers there are (zero-length descriptors are left out).
     *
     * @return the count
     */
    public int writableCount() {
        return writableCount;
    }

    /**
     * A device-writable buffer.
     *
     * @param i 0 to {@link #writableCount()} - 1
     * @return the range
     * @throws IndexOutOfBoundsException for a bad index
     */
    public GuestRange writable(int i) {
        return writable[Objects.checkIndex(i, writableCount)];
    }

    /**
     * The device-readable buffers.
     *
     * @return an immutable copy
     */
    public List<GuestRange> readableRanges() {
        return List.of(Arrays.copyOf(readable, readableCount));
    }

    /**
     * The device-writable buffers.
     *
     * @return an immutable copy
     */
    public List<GuestRange> writableRanges() {
        return List.of(Arrays.copyOf(writable, writableCount));
    }

    /**
     * Total length of the device-readable buffers.
     *
     * @return bytes, below 2^32
     */
    public long readableBytes() {
        return readableBytes;
    }

    /**
     * Total length of the device-writable buffers: the most the used length may say.
     *
     * @return bytes, below 2^32
     */
    public long writableBytes() {
        return writableBytes;
    }

    /**
     * Copies device-readable bytes, seen as one stream, into {@code dst}.
     *
     * @param offset where in the readable stream to start
     * @param dst    receives {@code min(dst.byteSize(), readableBytes - offset)} bytes
     * @return the number of bytes copied
     */
    public long readFrom(long offset, MemorySegment dst) {
        return copy(readable, readableCount, offset, dst, true);
    }

    /**
     * Copies {@code src} into the device-writable bytes, seen as one stream.
     *
     * @param offset where in the writable stream to start
     * @param src    supplies {@code min(src.byteSize(), writableBytes - offset)} bytes
     * @return the number of bytes copied
     */
    public long writeTo(long offset, MemorySegment src) {
        return copy(writable, writableCount, offset, src, false);
    }

    private static long copy(GuestRange[] ranges, int count, long offset, MemorySegment other, boolean fromChain) {
        if (offset < 0) {
            throw new IllegalArgumentException("negative offset: " + offset);
        }
        long done = 0;
        long skip = offset;
        for (int r = 0; r < count && done < other.byteSize(); r++) {
            long length = ranges[r].lengthBytes();
            if (skip >= length) {
                skip -= length;
                continue;
            }
            long n = Math.min(length - skip, other.byteSize() - done);
            if (fromChain) {
                MemorySegment.copy(ranges[r].segment(), skip, other, done, n);
            } else {
                MemorySegment.copy(other, done, ranges[r].segment(), skip, n);
            }
            done += n;
            skip = 0;
        }
        return done;
    }

    @Override
    public String toString() {
        return "DescriptorChain(head " + head + ", " + readableCount + " readable / " + readableBytes + " B, "
                + writableCount + " writable / " + writableBytes + " B)";
    }
}
