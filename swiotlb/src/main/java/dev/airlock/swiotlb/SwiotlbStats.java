package dev.airlock.swiotlb;

/**
 * A snapshot of a pool's counters. Taken while other threads map and unmap, the fields are each
 * current but not necessarily from the same instant; when the pool is quiet they are exact.
 *
 * @param poolName        the pool
 * @param totalSlots      the pool's size in 2 KiB slots
 * @param usedSlots       slots held by live mappings and coherent allocations
 * @param highWaterSlots  the most slots ever in use at once
 * @param failedMappings  how many mappings and allocations failed for lack of room
 * @param bytesToDevice   bytes copied from originals into slots (map, for every direction, and
 *                        {@code syncForDevice})
 * @param bytesFromDevice bytes copied from slots back to originals (unmap and {@code syncForCpu})
 */
public record SwiotlbStats(String poolName, long totalSlots, long usedSlots, long highWaterSlots, long failedMappings,
                           long bytesToDevice, long bytesFromDevice) {
    /**
     * Slots not in use.
     *
     * @return {@code totalSlots - usedSlots}
     */
    public long freeSlots() {
        return totalSlots - usedSlots;
    }
}
