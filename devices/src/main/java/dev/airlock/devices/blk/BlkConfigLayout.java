package dev.airlock.devices.blk;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

/**
 * The virtio-blk configuration space, {@code struct virtio_blk_config} (VIRTIO 1.2 §5.2.4), up to
 * and including {@code write_zeroes_may_unmap} and its padding (60 bytes; the secure-erase and zoned
 * fields that follow are not offered), and the device feature bits (§5.2.3).
 *
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +---------------------------------------------------------------+
 *  |                capacity (le64, 512-byte sectors)              |  0
 *  |                                                               |  4
 *  +---------------------------------------------------------------+
 *  |                        size_max (le32)                        |  8
 *  +---------------------------------------------------------------+
 *  |                        seg_max (le32)                         | 12
 *  +-------------------------------+---------------+---------------+
 *  |   geometry.cylinders (le16)   | geom.heads u8 |geom.sectors u8| 16
 *  +-------------------------------+---------------+---------------+
 *  |                        blk_size (le32)                        | 20
 *  +---------------+---------------+-------------------------------+
 *  | phys_blk_exp  | align_offset  |     min_io_size (le16)        | 24  topology
 *  +---------------+---------------+-------------------------------+
 *  |                      opt_io_size (le32)                       | 28  topology
 *  +---------------+---------------+-------------------------------+
 *  | writeback u8  |  unused0 u8   |      num_queues (le16)        | 32
 *  +---------------+---------------+-------------------------------+
 *  |                  max_discard_sectors (le32)                   | 36
 *  +---------------------------------------------------------------+
 *  |                    max_discard_seg (le32)                     | 40
 *  +---------------------------------------------------------------+
 *  |                discard_sector_alignment (le32)                | 44
 *  +---------------------------------------------------------------+
 *  |                max_write_zeroes_sectors (le32)                | 48
 *  +---------------------------------------------------------------+
 *  |                  max_write_zeroes_seg (le32)                  | 52
 *  +---------------+-----------------------------------------------+
 *  |wz_may_unmap u8|                 unused1[3]                    | 56
 *  +---------------+-----------------------------------------------+
 * </pre>
 *
 * <table class="striped">
 * <caption>Who touches each field</caption>
 * <tr><th>field</th><th>written by</th><th>read by</th><th>access</th></tr>
 * <tr><td>all</td><td>device, once, before it is served (the image's size does not change while it
 *     is served)</td><td>driver, through the transport's configuration reads with the generation
 *     retry loop</td><td>plain: the space is a private copy on the device side, never shared memory</td></tr>
 * </table>
 * Each field is valid only when its feature was offered: size_max with {@link #VIRTIO_BLK_F_SIZE_MAX},
 * seg_max with {@link #VIRTIO_BLK_F_SEG_MAX}, blk_size with {@link #VIRTIO_BLK_F_BLK_SIZE},
 * num_queues with {@link #VIRTIO_BLK_F_MQ}, the discard fields with {@link #VIRTIO_BLK_F_DISCARD}
 * and the write-zeroes fields with {@link #VIRTIO_BLK_F_WRITE_ZEROES}. This device offers no
 * writable field ({@code writeback} needs {@code VIRTIO_BLK_F_CONFIG_WCE}).
 */
public final class BlkConfigLayout {
    /** Maximum size of any single segment is in size_max. */
    public static final int VIRTIO_BLK_F_SIZE_MAX = 1;
    /** Maximum number of segments in a request is in seg_max. */
    public static final int VIRTIO_BLK_F_SEG_MAX = 2;
    /** Disk-style geometry is in geometry. */
    public static final int VIRTIO_BLK_F_GEOMETRY = 4;
    /** The device is read-only. */
    public static final int VIRTIO_BLK_F_RO = 5;
    /** Block size of the disk is in blk_size. */
    public static final int VIRTIO_BLK_F_BLK_SIZE = 6;
    /** Cache flush command support. */
    public static final int VIRTIO_BLK_F_FLUSH = 9;
    /** Topology information is available. */
    public static final int VIRTIO_BLK_F_TOPOLOGY = 10;
    /** The device can toggle its cache between writeback and writethrough. */
    public static final int VIRTIO_BLK_F_CONFIG_WCE = 11;
    /** More than one request queue; the count is in num_queues. */
    public static final int VIRTIO_BLK_F_MQ = 12;
    /** The device can discard (VIRTIO_BLK_T_DISCARD). */
    public static final int VIRTIO_BLK_F_DISCARD = 13;
    /** The device can write zeroes (VIRTIO_BLK_T_WRITE_ZEROES). */
    public static final int VIRTIO_BLK_F_WRITE_ZEROES = 14;

    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfByte U8 = ValueLayout.JAVA_BYTE;

    /** {@code struct virtio_blk_config} through {@code unused1}; no atomic access, so unaligned layouts. */
    public static final StructLayout LAYOUT = MemoryLayout.structLayout(
            LE64.withName("capacity"),
            LE32.withName("size_max"),
            LE32.withName("seg_max"),
            LE16.withName("cylinders"), U8.withName("heads"), U8.withName("sectors"),
            LE32.withName("blk_size"),
            U8.withName("physical_block_exp"), U8.withName("alignment_offset"), LE16.withName("min_io_size"),
            LE32.withName("opt_io_size"),
            U8.withName("writeback"), U8.withName("unused0"), LE16.withName("num_queues"),
            LE32.withName("max_discard_sectors"),
            LE32.withName("max_discard_seg"),
            LE32.withName("discard_sector_alignment"),
            LE32.withName("max_write_zeroes_sectors"),
            LE32.withName("max_write_zeroes_seg"),
            U8.withName("write_zeroes_may_unmap"), MemoryLayout.sequenceLayout(3, U8).withName("unused1"))
            .withName("virtio_blk_config");

    /** Offset of capacity. */
    public static final int CAPACITY_OFFSET = offset("capacity");
    /** Offset of size_max. */
    public static final int SIZE_MAX_OFFSET = offset("size_max");
    /** Offset of seg_max. */
    public static final int SEG_MAX_OFFSET = offset("seg_max");
    /** Offset of blk_size. */
    public static final int BLK_SIZE_OFFSET = offset("blk_size");
    /** Offset of num_queues. */
    public static final int NUM_QUEUES_OFFSET = offset("num_queues");
    /** Offset of max_discard_sectors. */
    public static final int MAX_DISCARD_SECTORS_OFFSET = offset("max_discard_sectors");
    /** Offset of max_discard_seg. */
    public static final int MAX_DISCARD_SEG_OFFSET = offset("max_discard_seg");
    /** Offset of discard_sector_alignment. */
    public static final int DISCARD_SECTOR_ALIGNMENT_OFFSET = offset("discard_sector_alignment");
    /** Offset of max_write_zeroes_sectors. */
    public static final int MAX_WRITE_ZEROES_SECTORS_OFFSET = offset("max_write_zeroes_sectors");
    /** Offset of max_write_zeroes_seg. */
    public static final int MAX_WRITE_ZEROES_SEG_OFFSET = offset("max_write_zeroes_seg");
    /** Offset of write_zeroes_may_unmap. */
    public static final int WRITE_ZEROES_MAY_UNMAP_OFFSET = offset("write_zeroes_may_unmap");
    /** The size of the space this device offers. */
    public static final int CONFIG_LENGTH = 60;

    static {
        if (LAYOUT.byteSize() != CONFIG_LENGTH || CAPACITY_OFFSET != 0 || SIZE_MAX_OFFSET != 8 || SEG_MAX_OFFSET != 12
                || BLK_SIZE_OFFSET != 20 || NUM_QUEUES_OFFSET != 34 || MAX_DISCARD_SECTORS_OFFSET != 36
                || MAX_WRITE_ZEROES_SECTORS_OFFSET != 48 || WRITE_ZEROES_MAY_UNMAP_OFFSET != 56) {
            throw new ExceptionInInitializerError("virtio_blk_config does not match VIRTIO 1.2 §5.2.4: " + LAYOUT);
        }
    }

    private BlkConfigLayout() {
    }

    private static int offset(String field) {
        return (int) LAYOUT.byteOffset(groupElement(field));
    }

    /**
     * Reads a little-endian field of 1, 2, 4 or 8 bytes from a configuration space copy.
     *
     * @param config    the space
     * @param offset    the field's offset
     * @param sizeBytes 1, 2, 4 or 8
     * @return the value, zero-extended
     */
    public static long get(MemorySegment config, int offset, int sizeBytes) {
        return switch (sizeBytes) {
            case 1 -> config.get(U8, offset) & 0xffL;
            case 2 -> config.get(LE16, offset) & 0xffffL;
            case 4 -> Integer.toUnsignedLong(config.get(LE32, offset));
            case 8 -> config.get(LE64, offset);
            default -> throw new IllegalArgumentException("field size must be 1, 2, 4 or 8: " + sizeBytes);
        };
    }

    /**
     * Writes a little-endian field of 1, 2, 4 or 8 bytes into a configuration space copy.
     *
     * @param config    the space
     * @param offset    the field's offset
     * @param sizeBytes 1, 2, 4 or 8
     * @param value     the value, in the low bytes
     */
    public static void set(MemorySegment config, int offset, int sizeBytes, long value) {
        switch (sizeBytes) {
            case 1 -> config.set(U8, offset, (byte) value);
            case 2 -> config.set(LE16, offset, (short) value);
            case 4 -> config.set(LE32, offset, (int) value);
            case 8 -> config.set(LE64, offset, value);
            default -> throw new IllegalArgumentException("field size must be 1, 2, 4 or 8: " + sizeBytes);
        }
    }
}
