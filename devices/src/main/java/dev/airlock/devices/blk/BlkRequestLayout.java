package dev.airlock.devices.blk;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

/**
 * A virtio-blk request (VIRTIO 1.2 §5.2.6): a 16-byte device-readable header, the data, and a
 * device-writable status byte at the very end of the chain; and the 16-byte segment that is the data
 * of a discard or write-zeroes request.
 *
 * <pre>
 *  header (struct virtio_blk_req, device-readable)
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +---------------------------------------------------------------+
 *  |                          type (le32)                          |  0
 *  +---------------------------------------------------------------+
 *  |                        reserved (le32)                        |  4
 *  +---------------------------------------------------------------+
 *  |                 sector (le64, 512-byte units)                 |  8
 *  |                                                               | 12
 *  +---------------------------------------------------------------+
 *  ... data: device-readable (OUT, DISCARD, WRITE_ZEROES) or device-writable (IN, GET_ID) ...
 *  +---------------+
 *  |  status (u8)  |  last byte of the chain, device-writable
 *  +---------------+
 *
 *  segment (struct virtio_blk_discard_write_zeroes)
 *  +---------------------------------------------------------------+
 *  |                         sector (le64)                         |  0
 *  |                                                               |  4
 *  +---------------------------------------------------------------+
 *  |                      num_sectors (le32)                       |  8
 *  +-------------------------------------------------------------+-+
 *  |                  flags (le32): reserved, must be 0           |u| 12   u = unmap
 *  +-------------------------------------------------------------+-+
 * </pre>
 *
 * <table class="striped">
 * <caption>Who touches each field</caption>
 * <tr><th>field</th><th>written by</th><th>read by</th><th>access</th></tr>
 * <tr><td>header, segments, OUT data</td><td>driver, before it makes the chain available</td>
 *     <td>device, once each, into a private copy (ordered by the avail idx release/acquire pair)</td><td>plain</td></tr>
 * <tr><td>IN data, status</td><td>device, before it publishes the used idx</td><td>driver, after its
 *     acquire load of the used idx</td><td>plain (ordered by the used idx release/acquire pair)</td></tr>
 * </table>
 * The driver writes {@code reserved} as 0; the device ignores it.
 */
public final class BlkRequestLayout {
    /** Read. */
    public static final int VIRTIO_BLK_T_IN = 0;
    /** Write. */
    public static final int VIRTIO_BLK_T_OUT = 1;
    /** Flush the write cache. */
    public static final int VIRTIO_BLK_T_FLUSH = 4;
    /** Read the device id string. */
    public static final int VIRTIO_BLK_T_GET_ID = 8;
    /** Discard sectors. */
    public static final int VIRTIO_BLK_T_DISCARD = 11;
    /** Write zeroes to sectors. */
    public static final int VIRTIO_BLK_T_WRITE_ZEROES = 13;
    /** Success. */
    public static final int VIRTIO_BLK_S_OK = 0;
    /** Device or driver error. */
    public static final int VIRTIO_BLK_S_IOERR = 1;
    /** Request unsupported by the device. */
    public static final int VIRTIO_BLK_S_UNSUPP = 2;
    /** Length of the id string GET_ID returns (not NUL-terminated when it is this long). */
    public static final int VIRTIO_BLK_ID_BYTES = 20;
    /** The unit of {@code sector} and {@code capacity}, whatever the block size. */
    public static final int SECTOR_SIZE = 512;
    /** log2 of {@link #SECTOR_SIZE}. */
    public static final int SECTOR_SHIFT = 9;
    /** Segment flag: the device may deallocate the zeroed range (write zeroes only). */
    public static final int VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The request header. */
    public static final StructLayout HEADER = MemoryLayout.structLayout(
            LE32.withName("type"), LE32.withName("reserved"), LE64.withName("sector")).withName("virtio_blk_req");
    /** A discard or write-zeroes segment. */
    public static final StructLayout SEGMENT = MemoryLayout.structLayout(
            LE64.withName("sector"), LE32.withName("num_sectors"), LE32.withName("flags"))
            .withName("virtio_blk_discard_write_zeroes");

    /** Offset of the header's type. */
    public static final int TYPE_OFFSET = (int) HEADER.byteOffset(groupElement("type"));
    /** Offset of the header's reserved word. */
    public static final int RESERVED_OFFSET = (int) HEADER.byteOffset(groupElement("reserved"));
    /** Offset of the header's sector. */
    public static final int SECTOR_OFFSET = (int) HEADER.byteOffset(groupElement("sector"));
    /** Length of the header. */
    public static final int HEADER_LENGTH = 16;
    /** Offset of a segment's sector. */
    public static final int SEGMENT_SECTOR_OFFSET = (int) SEGMENT.byteOffset(groupElement("sector"));
    /** Offset of a segment's num_sectors. */
    public static final int SEGMENT_NUM_SECTORS_OFFSET = (int) SEGMENT.byteOffset(groupElement("num_sectors"));
    /** Offset of a segment's flags. */
    public static final int SEGMENT_FLAGS_OFFSET = (int) SEGMENT.byteOffset(groupElement("flags"));
    /** Length of a segment. */
    public static final int SEGMENT_LENGTH = 16;
    /** Length of the status. */
    public static final int STATUS_LENGTH = 1;

    static {
        if (HEADER.byteSize() != HEADER_LENGTH || SECTOR_OFFSET != 8 || SEGMENT.byteSize() != SEGMENT_LENGTH
                || SEGMENT_FLAGS_OFFSET != 12) {
            throw new ExceptionInInitializerError("virtio-blk request layouts do not match VIRTIO 1.2 §5.2.6");
        }
    }

    private BlkRequestLayout() {
    }

    /**
     * Writes a request header.
     *
     * @param header at least {@link #HEADER_LENGTH} bytes
     * @param type   the request type
     * @param sector the first sector
     */
    public static void writeHeader(MemorySegment header, int type, long sector) {
        header.set(LE32, TYPE_OFFSET, type);
        header.set(LE32, RESERVED_OFFSET, 0);
        header.set(LE64, SECTOR_OFFSET, sector);
    }

    /**
     * Writes a discard or write-zeroes segment.
     *
     * @param segment    at least {@link #SEGMENT_LENGTH} bytes
     * @param sector     the first sector
     * @param numSectors how many sectors (unsigned 32-bit)
     * @param flags      the flags
     */
    public static void writeSegment(MemorySegment segment, long sector, int numSectors, int flags) {
        segment.set(LE64, SEGMENT_SECTOR_OFFSET, sector);
        segment.set(LE32, SEGMENT_NUM_SECTORS_OFFSET, numSectors);
        segment.set(LE32, SEGMENT_FLAGS_OFFSET, flags);
    }

    static int type(MemorySegment header) {
        return header.get(LE32, TYPE_OFFSET);
    }

    static long sector(MemorySegment header) {
        return header.get(LE64, SECTOR_OFFSET);
    }

    static long segmentSector(MemorySegment segments, long base) {
        return segments.get(LE64, base + SEGMENT_SECTOR_OFFSET);
    }

    static long segmentNumSectors(MemorySegment segments, long base) {
        return Integer.toUnsignedLong(segments.get(LE32, base + SEGMENT_NUM_SECTORS_OFFSET));
    }

    static int segmentFlags(MemorySegment segments, long base) {
        return segments.get(LE32, base + SEGMENT_FLAGS_OFFSET);
    }
}
