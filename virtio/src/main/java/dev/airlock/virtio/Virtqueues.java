package dev.airlock.virtio;

/**
 * Rules shared by both sides of a split virtqueue: queue sizes and the free-running 16-bit ring
 * counters (VIRTIO 1.2 §2.7).
 */
public final class Virtqueues {
    /** The largest queue size of a split virtqueue (§2.7). */
    public static final int MAX_QUEUE_SIZE = 32768;
    /** Ring counters ({@code idx}, {@code used_event}, {@code avail_event}) wrap at 2^16. */
    public static final int IDX_MASK = 0xffff;

    private Virtqueues() {
    }

    /**
     * Whether a split virtqueue may have this size: a power of two from 1 to 32768 (§2.7).
     *
     * @param queueSize the size
     * @return whether it is valid
     */
    public static boolean isValidQueueSize(int queueSize) {
        return queueSize >= 1 && queueSize <= MAX_QUEUE_SIZE && Integer.bitCount(queueSize) == 1;
    }

    /**
     * How far a free-running counter moved, modulo 2^16.
     *
     * @param fromIdx the older value
     * @param toIdx   the newer value
     * @return {@code (toIdx - fromIdx) mod 2^16}
     */
    public static int idxDistance(int fromIdx, int toIdx) {
        return (toIdx - fromIdx) & IDX_MASK;
    }

    /**
     * The event-index rule of §2.7.10 ({@code vring_need_event}): moving a counter from
     * {@code oldIdx} to {@code newIdx} crosses {@code eventIdx}, that is, the other side asked to
     * be notified when the entry at {@code eventIdx} is published, and it now is.
     *
     * @param eventIdx the {@code used_event} or {@code avail_event} the other side wrote
     * @param newIdx   the counter just published
     * @param oldIdx   the counter at the previous notification decision
     * @return whether a notification is needed
     */
    public static boolean needEvent(int eventIdx, int newIdx, int oldIdx) {
        return ((newIdx - eventIdx - 1) & IDX_MASK) < ((newIdx - oldIdx) & IDX_MASK);
    }
}
