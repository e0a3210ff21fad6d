package dev.airlock.virtio;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

/**
 * The available ring of a split virtqueue, {@code struct virtq_avail} (VIRTIO 1.2 §2.7.6): the
 * driver offers descriptor chains to the device through it. It is 2-byte aligned and
 * {@code 6 + 2 * queueSize} bytes long (§2.7.2).
 *
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-------------------------------+-------------------------------+
 *  |         flags (le16)          |           idx (le16)          |  0
 *  +-------------------------------+-------------------------------+
 *  |        ring[0] (le16)         |        ring[1] (le16)         |  4
 *  +-------------------------------+-------------------------------+
 *  |                             ...                               |
 *  +-------------------------------+
 *  |  used_event (le16)            |  4 + 2 * queueSize  (only with VIRTIO_F_EVENT_IDX)
 *  +-------------------------------+
 * </pre>
 *
 * <table class="striped">
 * <caption>Who touches each field</caption>
 * <tr><th>field</th><th>written by</th><th>read by</th><th>access</th></tr>
 * <tr><td>flags</td><td>driver</td><td>device, in its interrupt decision</td>
 *     <td>plain; the reader's full fence orders it (§2.7.7)</td></tr>
 * <tr><td>idx</td><td>driver</td><td>device</td><td>setRelease / getAcquire: publishes ring
 *     entries and descriptors</td></tr>
 * <tr><td>ring[i]</td><td>driver, before the idx release</td><td>device, after the idx acquire,
 *     once</td><td>plain</td></tr>
 * <tr><td>used_event</td><td>driver, then a full fence</td><td>device, after publishing used idx
 *     and a full fence</td><td>plain between full fences (§2.7.10)</td></tr>
 * </table>
 *
 * <p>{@code idx} is a free-running counter that wraps at 2^16; the slot of a counter value is
 * {@code value & (queueSize - 1)}.
 */
public final class VirtqAvailLayout {
    /** In {@code flags}: the driver does not want used buffer notifications (§2.7.7). */
    public static final int VIRTQ_AVAIL_F_NO_INTERRUPT = 1;

    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The two fixed fields in front of the ring. */
    public static final StructLayout HEADER_LAYOUT = MemoryLayout.structLayout(
            LE16.withName("flags"),
            LE16.withName("idx")).withName("virtq_avail_header");

    /** Offset of {@code flags}. */
    public static final long FLAGS_OFFSET = HEADER_LAYOUT.byteOffset(groupElement("flags"));
    /** Offset of {@code idx}. */
    public static final long IDX_OFFSET = HEADER_LAYOUT.byteOffset(groupElement("idx"));
    /** Offset of {@code ring[0]}. */
    public static final long RING_OFFSET = HEADER_LAYOUT.byteSize();
    /** Size of one ring entry (a descriptor head index), 2 bytes. */
    public static final int RING_ENTRY_LENGTH = 2;
    /** Alignment of the available ring, 2 bytes (§2.7.2). */
    public static final int ALIGNMENT = 2;

    // (MemorySegment avail, long offset) -> u16; idx is used with getAcquire/setRelease (aligned layout).
    static final VarHandle FLAGS = HEADER_LAYOUT.varHandle(groupElement("flags")).withInvokeExactBehavior();
    static final VarHandle IDX = HEADER_LAYOUT.varHandle(groupElement("idx")).withInvokeExactBehavior();
    /** ring[i] and used_event: (MemorySegment avail, long offset) -> short. */
    static final VarHandle U16 = LE16.varHandle().withInvokeExactBehavior();

    static {
        StructLayout largest = layout(Virtqueues.MAX_QUEUE_SIZE);
        if (layout(1).byteSize() != 8 || largest.byteSize() != 6 + 2L * Virtqueues.MAX_QUEUE_SIZE
                || largest.byteOffset(groupElement("used_event")) != usedEventOffset(Virtqueues.MAX_QUEUE_SIZE)
                || RING_OFFSET != 4) {
            throw new ExceptionInInitializerError("struct virtq_avail does not match VIRTIO 1.2 §2.7.6");
        }
    }

    private VirtqAvailLayout() {
    }

    /**
     * The whole available ring for a queue size.
     *
     * @param queueSize the queue size, 1 to 32768
     * @return {@code struct virtq_avail} with {@code queueSize} ring entries
     */
    public static StructLayout layout(int queueSize) {
        return MemoryLayout.structLayout(
                LE16.withName("flags"),
                LE16.withName("idx"),
                MemoryLayout.sequenceLayout(queueSize, LE16).withName("ring"),
                LE16.withName("used_event")).withName("virtq_avail");
    }

    /**
     * Size of the available ring.
     *
     * @param queueSize the queue size
     * @return {@code 6 + 2 * queueSize}
     */
    public static long lengthBytes(int queueSize) {
        return usedEventOffset(queueSize) + RING_ENTRY_LENGTH;
    }

    /**
     * Offset of a ring entry.
     *
     * @param slot the slot, {@code 0 <= slot < queueSize}
     * @return {@code 4 + 2 * slot}
     */
    public static long ringEntryOffset(int slot) {
        return RING_OFFSET + (long) RING_ENTRY_LENGTH * slot;
    }

    /**
     * Offset of {@code used_event}.
     *
     * @param queueSize the queue size
     * @return {@code 4 + 2 * queueSize}
     */
    public static long usedEventOffset(int queueSize) {
        return ringEntryOffset(queueSize);
    }
}
