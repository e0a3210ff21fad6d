package dev.airlock.transport;

/**
 * How the 64 doorbell flag bits of one primary/secondary pair are shared by the devices of the
 * pair: 8 slots of 8 bits, slot {@code s} owning bits {@code 8s .. 8s+7}.
 *
 * <pre>
 *  bit  63        56 55        48        ...        15         8 7          0
 *      +------------+------------+-------------------+------------+------------+
 *      |   slot 7   |   slot 6   |        ...        |   slot 1   |   slot 0   |
 *      +------------+------------+-------------------+------------+------------+
 *
 *  within a slot, driver -> device (secondary rings the primary):
 *      bit 0..6  available buffer notification for queue 0..6 (VIRTIO 1.2 §2.7.10, QueueNotify)
 *      bit 7     CONTROL: a shmem-doorbell request is waiting in the header
 *  within a slot, device -> driver (primary rings the secondary):
 *      bit 0     USED_BUFFER: used buffer notification (InterruptStatus bit 0, §4.2.2)
 *      bit 1     CONFIG_CHANGE: configuration change notification (InterruptStatus bit 1)
 *      bit 2     CONTROL_ACK: a shmem-doorbell request was acknowledged in the header
 *      bit 3..7  reserved, ignored by the driver
 * </pre>
 *
 * <table>
 *   <caption>Who rings and who reads</caption>
 *   <tr><th>flags</th><th>rung by</th><th>read by</th></tr>
 *   <tr><td>queue, CONTROL</td><td>driver (any thread)</td><td>device host's interrupt thread, read-and-clear once per interrupt</td></tr>
 *   <tr><td>USED_BUFFER, CONFIG_CHANGE, CONTROL_ACK</td><td>device (any thread)</td><td>driver host's interrupt thread, read-and-clear once per interrupt</td></tr>
 * </table>
 * The doorbell's read-and-clear happens-after the ring, so shared-memory stores made before ringing
 * are visible to the reader (see the hypervisor's ordering rules).
 */
public final class DoorbellFlagsLayout {
    /** Devices per primary/secondary pair. */
    public static final int MAX_SLOTS = 8;
    /** Flag bits per slot. */
    public static final int SLOT_BITS_LENGTH = 8;
    /** Queues per device that can be notified by doorbell. */
    public static final int MAX_QUEUES = 7;
    /** Driver to device: a shmem-doorbell request is waiting. */
    public static final int CONTROL_BIT = 7;
    /** Device to driver: used buffers. */
    public static final int USED_BUFFER_BIT = 0;
    /** Device to driver: configuration change (or DEVICE_NEEDS_RESET). */
    public static final int CONFIG_CHANGE_BIT = 1;
    /** Device to driver: a shmem-doorbell request was acknowledged. */
    public static final int CONTROL_ACK_BIT = 2;

    private DoorbellFlagsLayout() {
    }

    /**
     * The flag for one bit of one slot.
     *
     * @param slot 0 to {@link #MAX_SLOTS} - 1
     * @param bit  0 to 7
     * @return the flag word
     * @throws IllegalArgumentException if either is out of range
     */
    public static long flag(int slot, int bit) {
        if (slot < 0 || slot >= MAX_SLOTS || bit < 0 || bit >= SLOT_BITS_LENGTH) {
            throw new IllegalArgumentException("slot " + slot + " bit " + bit + " outside 8 x 8");
        }
        return 1L << (slot * SLOT_BITS_LENGTH + bit);
    }

    /**
     * The available buffer notification for one queue of one slot.
     *
     * @param slot  the device's slot
     * @param queue 0 to {@link #MAX_QUEUES} - 1
     * @return the flag word
     * @throws IllegalArgumentException if either is out of range
     */
    public static long queueNotifyFlag(int slot, int queue) {
        if (queue < 0 || queue >= MAX_QUEUES) {
            throw new IllegalArgumentException("queue " + queue + " outside 0.." + (MAX_QUEUES - 1));
        }
        return flag(slot, queue);
    }

    /**
     * The bits of one slot in a flag word.
     *
     * @param flags the word read from the doorbell
     * @param slot  the slot
     * @return bits 0 to 7 of the slot
     */
    public static int slotBits(long flags, int slot) {
        return (int) (flags >>> (slot * SLOT_BITS_LENGTH)) & 0xff;
    }
}
