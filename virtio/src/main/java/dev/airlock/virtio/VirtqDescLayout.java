package dev.airlock.virtio;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

/**
 * One entry of the descriptor table of a split virtqueue, {@code struct virtq_desc} (VIRTIO 1.2
 * §2.7.5). A descriptor table holds queue-size entries and is 16-byte aligned (§2.7.2); an indirect
 * table (§2.7.5.3) holds {@code len / 16} entries.
 *
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                   addr (le64, bytes 0..3)                     |  0
 *  +---------------------------------------------------------------+
 *  |                   addr (le64, bytes 4..7)                     |  4
 *  +---------------------------------------------------------------+
 *  |                          len (le32)                           |  8
 *  +-------------------------------+-------------------------------+
 *  |         flags (le16)          |          next (le16)          | 12
 *  +-------------------------------+-------------------------------+
 * </pre>
 *
 * <table class="striped">
 * <caption>Who touches each field</caption>
 * <tr><th>field</th><th>written by</th><th>read by</th><th>access</th></tr>
 * <tr><td>addr, len, flags, next</td><td>driver, before it publishes the avail idx that makes the
 *     chain available</td><td>device, after its acquire load of that avail idx, each field once
 *     per walk</td><td>plain (ordered by the avail idx release/acquire pair)</td></tr>
 * </table>
 *
 * <p>{@code addr} is a DMA address (the driver's view of the shared region); {@code next} is only
 * meaningful when {@link #VIRTQ_DESC_F_NEXT} is set.
 */
public final class VirtqDescLayout {
    /** This descriptor continues via the {@code next} field (§2.7.5). */
    public static final int VIRTQ_DESC_F_NEXT = 1;
    /** The buffer is device-writable; otherwise device-readable (§2.7.5). */
    public static final int VIRTQ_DESC_F_WRITE = 2;
    /** The buffer holds a table of descriptors (§2.7.5.3). */
    public static final int VIRTQ_DESC_F_INDIRECT = 4;
    /** The flag bits a split-ring descriptor may carry; all others are reserved and must be zero. */
    public static final int VIRTQ_DESC_F_VALID_MASK = VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_INDIRECT;

    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** {@code struct virtq_desc}, naturally aligned (8 bytes). */
    public static final StructLayout LAYOUT = MemoryLayout.structLayout(
            LE64.withName("addr"),
            LE32.withName("len"),
            LE16.withName("flags"),
            LE16.withName("next")).withName("virtq_desc");

    /** Offset of {@code addr}. */
    public static final long ADDR_OFFSET = LAYOUT.byteOffset(groupElement("addr"));
    /** Offset of {@code len}. */
    public static final long LEN_OFFSET = LAYOUT.byteOffset(groupElement("len"));
    /** Offset of {@code flags}. */
    public static final long FLAGS_OFFSET = LAYOUT.byteOffset(groupElement("flags"));
    /** Offset of {@code next}. */
    public static final long NEXT_OFFSET = LAYOUT.byteOffset(groupElement("next"));
    /** Size of one descriptor in bytes, 16 (§2.7.5). */
    public static final int DESC_LENGTH = 16;
    /** Alignment of the descriptor table, 16 bytes (§2.7.2). */
    public static final int TABLE_ALIGNMENT = 16;
    /**
     * Alignment this implementation requires of an indirect table: the natural alignment of
     * {@code struct virtq_desc}. The spec states none; every driver allocates tables at least this
     * aligned, and the device reads the 8-byte {@code addr} with an aligned access.
     */
    public static final int INDIRECT_TABLE_ALIGNMENT = 8;

    // (MemorySegment table, long base) -> field of the descriptor at base; plain access only.
    static final VarHandle ADDR = LAYOUT.varHandle(groupElement("addr")).withInvokeExactBehavior();
    static final VarHandle LEN = LAYOUT.varHandle(groupElement("len")).withInvokeExactBehavior();
    static final VarHandle FLAGS = LAYOUT.varHandle(groupElement("flags")).withInvokeExactBehavior();
    static final VarHandle NEXT = LAYOUT.varHandle(groupElement("next")).withInvokeExactBehavior();

    static {
        if (LAYOUT.byteSize() != DESC_LENGTH || NEXT_OFFSET != 14) {
            throw new ExceptionInInitializerError("struct virtq_desc must be 16 bytes, is " + LAYOUT.byteSize());
        }
    }

    private VirtqDescLayout() {
    }

    /**
     * Size of a descriptor table.
     *
     * @param queueSize the number of descriptors
     * @return {@code 16 * queueSize}
     */
    public static long tableLengthBytes(int queueSize) {
        return (long) DESC_LENGTH * queueSize;
    }

    /**
     * Offset of a descriptor within its table.
     *
     * @param index the descriptor index
     * @return {@code 16 * index}
     */
    public static long descOffset(int index) {
        return (long) DESC_LENGTH * index;
    }
}
