package dev.airlock.virtio;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

/**
 * The used ring of a split virtqueue, {@code struct virtq_used} (VIRTIO 1.2 §2.7.8): the device
 * returns chains to the driver through it. It is 4-byte aligned and {@code 6 + 8 * queueSize} bytes
 * long (§2.7.2).
 *
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-------------------------------+-------------------------------+
 *  |         flags (le16)          |           idx (le16)          |  0
 *  +-------------------------------+-------------------------------+
 *  |                      ring[0].id (le32)                        |  4
 *  +---------------------------------------------------------------+
 *  |                      ring[0].len (le32)                       |  8
 *  +---------------------------------------------------------------+
 *  |                             ...                               |
 *  +-------------------------------+
 *  |  avail_event (le16)           |  4 + 8 * queueSize  (only with VIRTIO_F_EVENT_IDX)
 *  +-------------------------------+
 * </pre>
 *
 * <table class="striped">
 * <caption>Who touches each field</caption>
 * <tr><th>field</th><th>written by</th><th>read by</th><th>access</th></tr>
 * <tr><td>flags</td><td>device</td><td>driver, in its kick decision</td>
 *     <td>plain; the reader's full fence orders it (§2.7.10)</td></tr>
 * <tr><td>idx</td><td>device</td><td>driver</td><td>setRelease / getAcquire: publishes used
 *     elements</td></tr>
 * <tr><td>ring[i].id, ring[i].len</td><td>device, before the idx release</td><td>driver, after
 *     the idx acquire, each once</td><td>plain</td></tr>
 * <tr><td>avail_event</td><td>device, then a full fence</td><td>driver, after publishing avail
 *     idx and a full fence</td><td>plain between full fences (§2.7.10)</td></tr>
 * </table>
 *
 * <p>{@code id} is the head index of the chain being returned; {@code len} the number of bytes the
 * device wrote into its device-writable buffers.
 */
public final class VirtqUsedLayout {
    /** In {@code flags}: the device does not want available buffer notifications (§2.7.10). */
    public static final int VIRTQ_USED_F_NO_NOTIFY = 1;

    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** {@code struct virtq_used_elem}. */
    public static final StructLayout ELEM_LAYOUT = MemoryLayout.structLayout(
            LE32.withName("id"),
            LE32.withName("len")).withName("virtq_used_elem");

    /** The two fixed fields in front of the ring. */
    public static final StructLayout HEADER_LAYOUT = MemoryLayout.structLayout(
            LE16.withName("flags"),
            LE16.withName("idx")).withName("virtq_used_header");

    /** Offset of {@code flags}. */
    public static final long FLAGS_OFFSET = HEADER_LAYOUT.byteOffset(groupElement("flags"));
    /** Offset of {@code idx}. */
    public static final long IDX_OFFSET = HEADER_LAYOUT.byteOffset(groupElement("idx"));
    /** Offset of {@code ring[0]}. */
    public static final long RING_OFFSET = HEADER_LAYOUT.byteSize();
    /** Offset of {@code id} within a used element. */
    public static final long ELEM_ID_OFFSET = ELEM_LAYOUT.byteOffset(groupElement("id"));
    /** Offset of {@code len} within a used element. */
    public static final long ELEM_LEN_OFFSET = ELEM_LAYOUT.byteOffset(groupElement("len"));
    /** Size of one used element, 8 bytes. */
    public static final int ELEM_LENGTH = 8;
    /** Alignment of the used ring, 4 bytes (§2.7.2). */
    public static final int ALIGNMENT = 4;

    // (MemorySegment used, long offset): idx is used with getAcquire/setRelease (aligned layout).
    static final VarHandle FLAGS = HEADER_LAYOUT.varHandle(groupElement("flags")).withInvokeExactBehavior();
    static final VarHandle IDX = HEADER_LAYOUT.varHandle(groupElement("idx")).withInvokeExactBehavior();
    // (MemorySegment used, long elemOffset) -> int
    static final VarHandle ELEM_ID = ELEM_LAYOUT.varHandle(groupElement("id")).withInvokeExactBehavior();
    static final VarHandle ELEM_LEN = ELEM_LAYOUT.varHandle(groupElement("len")).withInvokeExactBehavior();
    /** avail_event: (MemorySegment used, long offset) -> short. */
    static final VarHandle U16 = LE16.varHandle().withInvokeExactBehavior();

    static {
        StructLayout largest = layout(Virtqueues.MAX_QUEUE_SIZE);
        if (ELEM_LAYOUT.byteSize() != ELEM_LENGTH || layout(1).byteSize() != 14
                || largest.byteSize() != 6 + 8L * Virtqueues.MAX_QUEUE_SIZE
                || largest.byteOffset(groupElement("avail_event")) != availEventOffset(Virtqueues.MAX_QUEUE_SIZE)
                || RING_OFFSET != 4) {
            throw new ExceptionInInitializerError("struct virtq_used does not match VIRTIO 1.2 §2.7.8");
        }
    }

    private VirtqUsedLayout() {
    }

    /**
     * The whole used ring for a queue size.
     *
     * @param queueSize the queue size, 1 to 32768
     * @return {@code struct virtq_used} with {@code queueSize} used elements
     */
    public static StructLayout layout(int queueSize) {
        return MemoryLayout.structLayout(
                LE16.withName("flags"),
                LE16.withName("idx"),
                MemoryLayout.sequenceLayout(queueSize, ELEM_LAYOUT).withName("ring"),
                LE16.withName("avail_event")).withName("virtq_used");
    }

    /**
     * Size of the used ring as the spec counts it.
     *
     * @param queueSize the queue size
     * @return {@code 6 + 8 * queueSize}
     */
    public static long lengthBytes(int queueSize) {
        return availEventOffset(queueSize) + 2;
    }

    /**
     * Offset of a used element.
     *
     * @param slot the slot, {@code 0 <= slot < queueSize}
     * @return {@code 4 + 8 * slot}
     */
    public static long elemOffset(int slot) {
        return RING_OFFSET + (long) ELEM_LENGTH * slot;
    }

    /**
     * Offset of {@code avail_event}.
     *
     * @param queueSize the queue size
     * @return {@code 4 + 8 * queueSize}
     */
    public static long availEventOffset(int queueSize) {
        return elemOffset(queueSize);
    }
}
