package dev.airlock.devices.blk;

import java.util.concurrent.CompletableFuture;

/**
 * One virtio-blk request on the driver side: what to send (data buffers in the driver's private RAM)
 * and the future to complete. Owned by the driver loop once submitted; {@code slot} is set while it
 * is in a virtqueue.
 */
final class BlkDriverRequest {
    /** The request type, VIRTIO_BLK_T_*. */
    final int type;
    /** The header's sector (IN, OUT), or the segment's sector (DISCARD, WRITE_ZEROES). */
    final long sector;
    /** The data buffers of a request without data (never written). */
    private static final long[] NO_BUFFERS = new long[0];

    /** Data buffers (IN, OUT) in the driver's private RAM. */
    final long[] gpas;
    final long[] lengths;
    /** The segment's sector count and flags (DISCARD, WRITE_ZEROES). */
    final long numSectors;
    final int segmentFlags;
    final CompletableFuture<Void> future = new CompletableFuture<>();
    /** Submission order, so recovery resubmits in the original order. */
    long seq;
    /** The control slot while in a virtqueue, else -1. */
    int slot = -1;
    /** The id GET_ID returned, copied out of the slot before it is reused. */
    byte[] id;

    private BlkDriverRequest(int type, long sector, long[] gpas, long[] lengths, long numSectors, int segmentFlags) {
        this.type = type;
        this.sector = sector;
        this.gpas = gpas;
        this.lengths = lengths;
        this.numSectors = numSectors;
        this.segmentFlags = segmentFlags;
    }

    /** A read or write of the given buffers. */
    static BlkDriverRequest data(int type, long sector, long[] gpas, long[] lengths) {
        return new BlkDriverRequest(type, sector, gpas, lengths, 0, 0);
    }

    /** A request without data (FLUSH, GET_ID). */
    static BlkDriverRequest control(int type) {
        return new BlkDriverRequest(type, 0, NO_BUFFERS, NO_BUFFERS, 0, 0);
    }

    /** A discard or write-zeroes of one range. */
    static BlkDriverRequest range(int type, long sector, long numSectors, int flags) {
        return new BlkDriverRequest(type, sector, NO_BUFFERS, NO_BUFFERS, numSectors, flags);
    }

    boolean writesToDevice() {
        return type == BlkRequestLayout.VIRTIO_BLK_T_OUT;
    }

    boolean hasSegment() {
        return type == BlkRequestLayout.VIRTIO_BLK_T_DISCARD || type == BlkRequestLayout.VIRTIO_BLK_T_WRITE_ZEROES;
    }

    @Override
    public String toString() {
        return "BlkDriverRequest(type " + type + ", sector " + sector + ", " + gpas.length + " buffer(s), seq " + seq + ")";
    }
}
