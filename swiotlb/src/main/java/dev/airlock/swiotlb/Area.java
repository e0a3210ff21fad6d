package dev.airlock.swiotlb;

import java.util.concurrent.locks.ReentrantLock;

/**
 * One area of a pool: a run of whole segments with its own lock and search-start hint, so that
 * threads mapping through different areas do not contend (Linux's {@code struct io_tlb_area}).
 */
final class Area {
    final int index;
    /** First slot of the area. */
    final int start;
    /** One past the last slot. */
    final int end;
    final ReentrantLock lock = new ReentrantLock();

    /**
     * Where the next search starts: the most recently freed range, whose slots are likely still in
     * the cache, or else just past the last allocation (Linux uses the latter only); guarded by
     * {@link #lock}.
     */
    int hint;
    /**
     * Slots in use in this area; written under {@link #lock}. Read without it only as a hint for
     * skipping areas that cannot have room (a stale value costs a wasted or a repeated search).
     */
    int used;
    /** Bytes copied into slots of this area (map, syncForDevice); guarded by {@link #lock}. */
    long bytesToDevice;
    /** Bytes copied out of slots of this area (unmap, syncForCpu); guarded by {@link #lock}. */
    long bytesFromDevice;

    Area(int index, int start, int end) {
        this.index = index;
        this.start = start;
        this.end = end;
        this.hint = start;
    }

    int slots() {
        return end - start;
    }
}
