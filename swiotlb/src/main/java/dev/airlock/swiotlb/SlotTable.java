package dev.airlock.swiotlb;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

import static dev.airlock.swiotlb.SwiotlbPool.IO_TLB_SEGSIZE;
import static dev.airlock.swiotlb.SwiotlbPool.IO_TLB_SHIFT;

/**
 * The per-slot bookkeeping of one pool, held in arrays indexed by slot so that the hot path creates
 * no per-mapping objects.
 *
 * <p>Every slot has a free-run count ({@link #freeRun}, Linux's {@code slots[i].list}): the number of
 * free slots from it to the next used slot or the end of its 128-slot segment, whichever comes first;
 * 0 when the slot is in use. Because a run never extends past its segment, a run of at least
 * {@code n} slots starting at {@code i} is a free range that does not cross a segment boundary.
 *
 * <p>The fields of a live allocation live at its first slot (its <em>head</em>); every slot of the
 * allocation records the head in {@link #head}, so that an address inside the allocation finds it.
 *
 * <p>Not thread-safe: the caller holds the lock of the area that contains the slots (all area locks
 * for an allocation that spans areas).
 */
final class SlotTable {
    /** Head state: the slot is not the head of a live allocation. */
    static final byte FREE = 0;
    /** Head state: a live streaming mapping ({@code mapSingle}). */
    static final byte MAPPED = 1;
    /** Head state: an unmap has claimed the mapping and is copying back; its slots are freed next. */
    static final byte UNMAPPING = 2;
    /** Head state: a live coherent allocation ({@code alloc}). */
    static final byte COHERENT = 3;

    private static final int NO_HEAD = -1;

    final int nslabs;
    private final long dmaBase;

    /** Free slots from here to the next used slot or the segment end; 0 when used. */
    final int[] freeRun;
    /** The first slot of the allocation holding each slot, or -1 when free. */
    final int[] head;

    // The remaining arrays are meaningful at the head slot of a live allocation only.
    /** One of {@link #FREE}, {@link #MAPPED}, {@link #UNMAPPING}, {@link #COHERENT}. */
    final byte[] state;
    /** The ordinal of the mapping's {@link DmaDirection}. */
    final byte[] direction;
    /** How many slots the allocation holds. */
    final int[] slotCount;
    /** The offset of the mapping's first byte from the start of its head slot (min_align_mask). */
    final int[] alignOffset;
    /** The original's guest-physical address in the driver's space. */
    final long[] origAddr;
    /** The size the caller asked for, in bytes. */
    final long[] allocSize;
    /** The memory behind the original (a region's segment), kept so unmap needs no second lookup. */
    final MemorySegment[] origSegment;
    /** The original's offset in {@link #origSegment}. */
    final long[] origOffset;

    SlotTable(int nslabs, long dmaBase) {
        this.nslabs = nslabs;
        this.dmaBase = dmaBase;
        this.freeRun = new int[nslabs];
        this.head = new int[nslabs];
        this.state = new byte[nslabs];
        this.direction = new byte[nslabs];
        this.slotCount = new int[nslabs];
        this.alignOffset = new int[nslabs];
        this.origAddr = new long[nslabs];
        this.allocSize = new long[nslabs];
        this.origSegment = new MemorySegment[nslabs];
        this.origOffset = new long[nslabs];
        Arrays.fill(head, NO_HEAD);
        for (int i = 0; i < nslabs; i++) {
            freeRun[i] = segmentEnd(i) - i;
        }
    }

    /** The first slot of the segment holding {@code idx}. */
    static int segmentStart(int idx) {
        return idx & -IO_TLB_SEGSIZE;
    }

    /** One past the last slot of the segment holding {@code idx} (the last segment may be short). */
    int segmentEnd(int idx) {
        return Math.min(segmentStart(idx) + IO_TLB_SEGSIZE, nslabs);
    }

    /**
     * The first slot at or after {@code from} whose DMA address is congruent to {@code target}
     * modulo {@code mask + 1}. {@code mask} is a low-bit mask of at least the slot bits and
     * {@code target} has no bits below the slot size, so the distance is a whole number of slots.
     */
    private long firstCandidate(long from, long mask, long target) {
        long slotAddr = dmaBase + (from << IO_TLB_SHIFT);
        return from + (((target - slotAddr) & mask) >>> IO_TLB_SHIFT);
    }

    /**
     * Finds {@code n} free slots in one segment whose first slot lies in {@code [from, to)} and whose
     * DMA address is congruent to {@code target} modulo {@code mask + 1}.
     *
     * @return the first slot, or -1
     */
    int search(int from, int to, int n, long mask, long target) {
        long i = firstCandidate(from, mask, target);
        while (i < to) {
            int run = freeRun[(int) i];
            if (run >= n) {
                return (int) i;
            }
            // Slots i+1 .. i+run-1 are suffixes of the same too-short run; skip them.
            i = firstCandidate(i + Math.max(run, 1), mask, target);
        }
        return -1;
    }

    /**
     * Finds {@code n > IO_TLB_SEGSIZE} free slots for a multi-segment allocation: whole free segments
     * from a segment start whose DMA address is a multiple of {@code mask + 1}, the last one possibly
     * used in part.
     *
     * @return the first slot, or -1
     */
    int searchSegments(int n, long mask) {
        for (int s = 0; s < nslabs; s += IO_TLB_SEGSIZE) {
            if (((dmaBase + ((long) s << IO_TLB_SHIFT)) & mask) != 0) {
                continue;
            }
            int remaining = n;
            int p = s;
            while (remaining > 0 && p < nslabs && freeRun[p] >= Math.min(remaining, IO_TLB_SEGSIZE)) {
                remaining -= Math.min(remaining, IO_TLB_SEGSIZE);
                p += IO_TLB_SEGSIZE;
            }
            if (remaining == 0) {
                return s;
            }
        }
        return -1;
    }

    /** Marks {@code [idx, idx + n)} used by the allocation whose head is {@code h}; may span segments. */
    void claim(int idx, int n, int h) {
        int end = idx + n;
        for (int p = idx; p < end; ) {
            int q = Math.min(segmentEnd(p), end);
            claimInSegment(p, q - p, h);
            p = q;
        }
    }

    /** Frees {@code [idx, idx + n)} and clears the head fields; may span segments. */
    void release(int idx, int n) {
        int end = idx + n;
        for (int p = idx; p < end; ) {
            int q = Math.min(segmentEnd(p), end);
            releaseInSegment(p, q - p);
            p = q;
        }
        state[idx] = FREE;
        origSegment[idx] = null;
    }

    private void claimInSegment(int idx, int n, int h) {
        for (int i = idx; i < idx + n; i++) {
            freeRun[i] = 0;
            head[i] = h;
        }
        // The free slots just before the range now run up to idx only.
        int run = 0;
        for (int i = idx - 1; i >= segmentStart(idx) && freeRun[i] != 0; i--) {
            freeRun[i] = ++run;
        }
    }

    private void releaseInSegment(int idx, int n) {
        int end = idx + n;
        int run = end < segmentEnd(idx) ? freeRun[end] : 0;
        for (int i = end - 1; i >= idx; i--) {
            freeRun[i] = ++run;
            head[i] = NO_HEAD;
        }
        // The free slots just before the range now run on through it.
        for (int i = idx - 1; i >= segmentStart(idx) && freeRun[i] != 0; i--) {
            freeRun[i] = ++run;
        }
    }
}
