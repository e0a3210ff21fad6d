package dev.airlock.swiotlb;

import java.io.Serial;

/**
 * A pool has no free range that can hold a mapping or allocation: it is full, or too fragmented for
 * the request's size and alignment. Layers above (the DMA operations) wrap it in their own mapping
 * failure; the virtio core typically retries after in-flight requests complete.
 */
public final class SwiotlbFullException extends RuntimeException {
    @Serial
    private static final long serialVersionUID = 1L;

    private final String poolName;
    private final long requestBytes;
    private final long slotsNeeded;
    private final long usedSlots;
    private final long totalSlots;

    /**
     * Creates the exception.
     *
     * @param poolName     the pool that had no room
     * @param requestBytes the size asked for
     * @param slotsNeeded  the contiguous slots that size needs, alignment offset included
     * @param alignment    the DMA-address alignment the first slot needed
     * @param usedSlots    slots in use when the search failed
     * @param totalSlots   the pool's size in slots
     */
    public SwiotlbFullException(String poolName, long requestBytes, long slotsNeeded, long alignment, long usedSlots,
                                long totalSlots) {
        super("swiotlb pool '" + poolName + "' is full: no room for " + requestBytes + " bytes (" + slotsNeeded
                + " contiguous slots, alignment " + alignment + "); " + usedSlots + "/" + totalSlots + " slots used");
        this.poolName = poolName;
        this.requestBytes = requestBytes;
        this.slotsNeeded = slotsNeeded;
        this.usedSlots = usedSlots;
        this.totalSlots = totalSlots;
    }

    /**
     * The pool that had no room.
     *
     * @return its name
     */
    public String poolName() {
        return poolName;
    }

    /**
     * The size of the failed request.
     *
     * @return bytes
     */
    public long requestBytes() {
        return requestBytes;
    }

    /**
     * The number of contiguous slots the request needed.
     *
     * @return slots
     */
    public long slotsNeeded() {
        return slotsNeeded;
    }

    /**
     * Slots in use when the request failed.
     *
     * @return slots
     */
    public long usedSlots() {
        return usedSlots;
    }

    /**
     * The pool's size.
     *
     * @return slots
     */
    public long totalSlots() {
        return totalSlots;
    }
}
