package dev.airlock.devices.blk;

import dev.airlock.transport.DoorbellFlagsLayout;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Objects;

/**
 * How a {@link BlkDevice} serves an image. Build with {@link #builder(Path)}; every limit is checked
 * there.
 *
 * @param image                 the raw image file (its size, rounded down to 512 bytes, is the capacity)
 * @param readOnly              open the image read-only and offer {@code VIRTIO_BLK_F_RO}: writes,
 *                              discards and write-zeroes fail with IOERR
 * @param serial                the id GET_ID returns: ASCII, at most 20 bytes
 * @param numQueues             request queues, 1 to 7 ({@code VIRTIO_BLK_F_MQ} is offered above 1)
 * @param queueSizeMax          QueueNumMax of each queue: a power of two, 1 to 32768
 * @param segMax                the most data buffers per request (seg_max), at least 1
 * @param sizeMax               the largest data buffer in bytes (size_max), at least 512
 * @param blkSize               the block size the driver should use (blk_size): a power of two, 512 to 65536
 * @param maxDiscardSectors     the most sectors per discard segment, 1 to 2^32 - 1
 * @param maxDiscardSeg         the most segments per discard request, 1 to 65536
 * @param maxWriteZeroesSectors the most sectors per write-zeroes segment, 1 to 2^32 - 1
 * @param maxWriteZeroesSeg     the most segments per write-zeroes request, 1 to 65536
 * @param writeZeroesMayUnmap   whether write-zeroes with the unmap flag may punch holes
 */
public record BlkOptions(Path image, boolean readOnly, String serial, int numQueues, int queueSizeMax, int segMax,
                         int sizeMax, int blkSize, long maxDiscardSectors, long maxDiscardSeg, long maxWriteZeroesSectors,
                         long maxWriteZeroesSeg, boolean writeZeroesMayUnmap) {
    private static final long U32_MAX = 0xffff_ffffL;
    private static final long MAX_SEGMENTS = 65536;

    /**
     * Checks every option.
     *
     * @throws IllegalArgumentException if one is out of range
     */
    public BlkOptions {
        Objects.requireNonNull(image, "image");
        Objects.requireNonNull(serial, "serial");
        byte[] id = serial.getBytes(StandardCharsets.US_ASCII);
        if (id.length > BlkRequestLayout.VIRTIO_BLK_ID_BYTES || !StandardCharsets.US_ASCII.newEncoder().canEncode(serial)) {
            throw new IllegalArgumentException("serial must be ASCII of at most 20 bytes: '" + serial + "'");
        }
        check("numQueues", numQueues, 1, DoorbellFlagsLayout.MAX_QUEUES);
        check("queueSizeMax", queueSizeMax, 1, 32768);
        if (Integer.bitCount(queueSizeMax) != 1) {
            throw new IllegalArgumentException("queueSizeMax must be a power of two: " + queueSizeMax);
        }
        check("segMax", segMax, 1, Integer.MAX_VALUE);
        check("sizeMax", sizeMax, BlkRequestLayout.SECTOR_SIZE, Integer.MAX_VALUE);
        check("blkSize", blkSize, BlkRequestLayout.SECTOR_SIZE, 65536);
        if (Integer.bitCount(blkSize) != 1) {
            throw new IllegalArgumentException("blkSize must be a power of two: " + blkSize);
        }
        check("maxDiscardSectors", maxDiscardSectors, 1, U32_MAX);
        // The device copies a request's segments out of shared memory: 65536 of them are 1 MiB.
        check("maxDiscardSeg", maxDiscardSeg, 1, MAX_SEGMENTS);
        check("maxWriteZeroesSectors", maxWriteZeroesSectors, 1, U32_MAX);
        check("maxWriteZeroesSeg", maxWriteZeroesSeg, 1, MAX_SEGMENTS);
    }

    private static void check(String name, long value, long min, long max) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(name + " must be " + min + " to " + max + ": " + value);
        }
    }

    /**
     * A builder with the defaults: read-write, serial from the file name, one queue of up to 256,
     * seg_max 126, size_max 256 KiB (the bounce pool's largest mapping), blk_size 512, discard and
     * write-zeroes of up to 2^22 sectors (2 GiB) and 16 segments, write-zeroes may unmap.
     *
     * @param image the raw image file
     * @return the builder
     */
    public static Builder builder(Path image) {
        return new Builder(image);
    }

    /** Builds {@link BlkOptions}. Not thread-safe. */
    public static final class Builder {
        private final Path image;
        private boolean readOnly;
        private String serial;
        private int numQueues = 1;
        private int queueSizeMax = 256;
        private int segMax = 126;
        private int sizeMax = 256 * 1024;
        private int blkSize = BlkRequestLayout.SECTOR_SIZE;
        private long maxDiscardSectors = 1L << 22;
        private long maxDiscardSeg = 16;
        private long maxWriteZeroesSectors = 1L << 22;
        private long maxWriteZeroesSeg = 16;
        private boolean writeZeroesMayUnmap = true;

        private Builder(Path image) {
            this.image = Objects.requireNonNull(image, "image");
            Path name = image.getFileName();
            String s = name == null ? "airlock-blk" : name.toString().replaceAll("[^\\x20-\\x7e]", "_");
            this.serial = s.length() > BlkRequestLayout.VIRTIO_BLK_ID_BYTES ? s.substring(0, BlkRequestLayout.VIRTIO_BLK_ID_BYTES) : s;
        }

        /**
         * Serves the image read-only.
         *
         * @param value whether
         * @return this
         */
        public Builder readOnly(boolean value) {
            readOnly = value;
            return this;
        }

        /**
         * Sets the serial (GET_ID).
         *
         * @param value ASCII, at most 20 bytes
         * @return this
         */
        public Builder serial(String value) {
            serial = value;
            return this;
        }

        /**
         * Sets the number of request queues.
         *
         * @param value 1 to 7
         * @return this
         */
        public Builder numQueues(int value) {
            numQueues = value;
            return this;
        }

        /**
         * Sets QueueNumMax.
         *
         * @param value a power of two, 1 to 32768
         * @return this
         */
        public Builder queueSizeMax(int value) {
            queueSizeMax = value;
            return this;
        }

        /**
         * Sets seg_max.
         *
         * @param value at least 1
         * @return this
         */
        public Builder segMax(int value) {
            segMax = value;
            return this;
        }

        /**
         * Sets size_max.
         *
         * @param value bytes, at least 512
         * @return this
         */
        public Builder sizeMax(int value) {
            sizeMax = value;
            return this;
        }

        /**
         * Sets blk_size.
         *
         * @param value a power of two, 512 to 65536
         * @return this
         */
        public Builder blkSize(int value) {
            blkSize = value;
            return this;
        }

        /**
         * Sets the discard limits.
         *
         * @param sectors  the most sectors per segment
         * @param segments the most segments per request
         * @return this
         */
        public Builder discardLimits(long sectors, long segments) {
            maxDiscardSectors = sectors;
            maxDiscardSeg = segments;
            return this;
        }

        /**
         * Sets the write-zeroes limits.
         *
         * @param sectors   the most sectors per segment
         * @param segments  the most segments per request
         * @param mayUnmap  whether the unmap flag may punch holes
         * @return this
         */
        public Builder writeZeroesLimits(long sectors, long segments, boolean mayUnmap) {
            maxWriteZeroesSectors = sectors;
            maxWriteZeroesSeg = segments;
            writeZeroesMayUnmap = mayUnmap;
            return this;
        }

        /**
         * Checks and builds the options.
         *
         * @return the options
         * @throws IllegalArgumentException if one is out of range
         */
        public BlkOptions build() {
            return new BlkOptions(image, readOnly, serial, numQueues, queueSizeMax, segMax, sizeMax, blkSize,
                    maxDiscardSectors, maxDiscardSeg, maxWriteZeroesSectors, maxWriteZeroesSeg, writeZeroesMayUnmap);
        }
    }
}
