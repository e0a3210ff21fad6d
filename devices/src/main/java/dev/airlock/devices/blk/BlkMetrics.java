package dev.airlock.devices.blk;

import java.util.concurrent.atomic.LongAdder;

/**
 * Counters of one {@link BlkDevice}, updated by its queue workers and readable from any thread
 * (each counter is exact once the workers are idle; while they run, a reader sees each counter at
 * some recent value).
 */
public final class BlkMetrics {
    private final LongAdder reads = new LongAdder();
    private final LongAdder writes = new LongAdder();
    private final LongAdder flushes = new LongAdder();
    private final LongAdder getIds = new LongAdder();
    private final LongAdder discards = new LongAdder();
    private final LongAdder writeZeroes = new LongAdder();
    private final LongAdder unsupported = new LongAdder();
    private final LongAdder bytesRead = new LongAdder();
    private final LongAdder bytesWritten = new LongAdder();
    private final LongAdder ioErrors = new LongAdder();
    private final LongAdder faults = new LongAdder();

    BlkMetrics() {
    }

    void count(BlkRequest request) {
        switch (request) {
            case BlkRequest.Read r -> reads.increment();
            case BlkRequest.Write w -> writes.increment();
            case BlkRequest.Flush f -> flushes.increment();
            case BlkRequest.GetId g -> getIds.increment();
            case BlkRequest.Discard d -> discards.increment();
            case BlkRequest.WriteZeroes z -> writeZeroes.increment();
            case BlkRequest.Rejected r -> { }
        }
    }

    void completed(int status) {
        if (status == BlkRequestLayout.VIRTIO_BLK_S_UNSUPP) {
            unsupported.increment();
        } else if (status != BlkRequestLayout.VIRTIO_BLK_S_OK) {
            ioErrors.increment();
        }
    }

    void bytesRead(long n) {
        bytesRead.add(n);
    }

    void bytesWritten(long n) {
        bytesWritten.add(n);
    }

    void fault() {
        faults.increment();
    }

    /**
     * Well-formed read requests (IN), successful or not.
     *
     * @return the count
     */
    public long reads() {
        return reads.sum();
    }

    /**
     * Well-formed write requests (OUT).
     *
     * @return the count
     */
    public long writes() {
        return writes.sum();
    }

    /**
     * Flush requests.
     *
     * @return the count
     */
    public long flushes() {
        return flushes.sum();
    }

    /**
     * GET_ID requests.
     *
     * @return the count
     */
    public long getIds() {
        return getIds.sum();
    }

    /**
     * Well-formed discard requests.
     *
     * @return the count
     */
    public long discards() {
        return discards.sum();
    }

    /**
     * Well-formed write-zeroes requests.
     *
     * @return the count
     */
    public long writeZeroes() {
        return writeZeroes.sum();
    }

    /**
     * Requests answered VIRTIO_BLK_S_UNSUPP.
     *
     * @return the count
     */
    public long unsupported() {
        return unsupported.sum();
    }

    /**
     * Requests answered VIRTIO_BLK_S_IOERR: malformed, refused (read-only) or failed I/O.
     *
     * @return the count
     */
    public long ioErrors() {
        return ioErrors.sum();
    }

    /**
     * Protocol violations that set DEVICE_NEEDS_RESET.
     *
     * @return the count
     */
    public long faults() {
        return faults.sum();
    }

    /**
     * Bytes read from the image into the guest's buffers.
     *
     * @return the count
     */
    public long bytesRead() {
        return bytesRead.sum();
    }

    /**
     * Bytes written to the image from the guest's buffers (not counting discards and write-zeroes).
     *
     * @return the count
     */
    public long bytesWritten() {
        return bytesWritten.sum();
    }

    @Override
    public String toString() {
        return "BlkMetrics(reads " + reads() + ", writes " + writes() + ", flushes " + flushes() + ", discards " + discards()
                + ", writeZeroes " + writeZeroes() + ", getIds " + getIds() + ", bytesRead " + bytesRead() + ", bytesWritten "
                + bytesWritten() + ", ioErrors " + ioErrors() + ", unsupported " + unsupported() + ", faults " + faults() + ")";
    }
}
