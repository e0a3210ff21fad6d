package dev.airlock.vhostuser;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Inflight tracking over a region, as a killed back-end leaves it and a restarted one reads it. */
class InflightQueueTest {
    private static final int SIZE = 8;

    private static MemorySegment region(Arena arena) {
        return arena.allocate(InflightQueueRegionLayout.regionLength(SIZE), 64);
    }

    private static int usedIdxOf(MemorySegment region) {
        return region.get(ValueLayout.JAVA_SHORT, InflightQueueRegionLayout.USED_IDX_OFFSET) & 0xffff;
    }

    @Test
    void shouldInitialiseAFreshRegionAndResubmitNothing() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment r = region(arena);
            InflightQueue q = new InflightQueue("t", r, SIZE);
            assertArrayEquals(new int[0], q.recover(7));
            assertEquals(1, r.get(ValueLayout.JAVA_SHORT, InflightQueueRegionLayout.VERSION_OFFSET));
            assertEquals(7, usedIdxOf(r));
        }
    }

    @Test
    void shouldResubmitWhatWasTakenAndNotCompletedInTheOrderTaken() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment r = region(arena);
            InflightQueue first = new InflightQueue("t", r, SIZE);
            first.recover(0);
            for (int head : new int[] {5, 1, 3, 6}) {
                first.popped(head);
            }
            first.used(1);
            first.published(1);
            // Killed here: 5, 3 and 6 are in flight.
            InflightQueue second = new InflightQueue("t", r, SIZE);
            assertArrayEquals(new int[] {5, 3, 6}, second.recover(1));
            second.popped(2); // the counter continues after the recovered ones
            assertArrayEquals(new int[] {5, 3, 6, 2}, new InflightQueue("t", r, SIZE).recover(1));
        }
    }

    @Test
    void shouldClearTheLastBatchWhenTheUsedIdxWasPublishedButTheFlagsNotCleared() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment r = region(arena);
            InflightQueue first = new InflightQueue("t", r, SIZE);
            first.recover(0);
            for (int head : new int[] {0, 1, 2, 3}) {
                first.popped(head);
            }
            first.used(2);
            first.used(0);
            // Killed after the used idx store (now 2 in the used ring) and before published().
            assertEquals(0, usedIdxOf(r));
            assertArrayEquals(new int[] {1, 3}, new InflightQueue("t", r, SIZE).recover(2));
            assertEquals(2, usedIdxOf(r));
        }
    }

    @Test
    void rejectsAHostileRegion() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment r = region(arena);
            new InflightQueue("t", r, SIZE).recover(0);
            assertThrows(VhostUserProtocolException.class, () -> new InflightQueue("t", r, SIZE * 2).recover(0), "desc_num mismatch");
            r.set(ValueLayout.JAVA_BYTE, InflightQueueRegionLayout.descOffset(3) + InflightQueueRegionLayout.INFLIGHT_OFFSET, (byte) 7);
            assertEquals("t.desc[3].inflight",
                    assertThrows(VhostUserProtocolException.class, () -> new InflightQueue("t", r, SIZE).recover(0)).field());
            r.set(ValueLayout.JAVA_BYTE, InflightQueueRegionLayout.descOffset(3) + InflightQueueRegionLayout.INFLIGHT_OFFSET, (byte) 0);
            assertEquals("t.used_idx",
                    assertThrows(VhostUserProtocolException.class, () -> new InflightQueue("t", r, SIZE).recover(SIZE + 1)).field());
            r.set(ValueLayout.JAVA_SHORT, InflightQueueRegionLayout.LAST_BATCH_HEAD_OFFSET, (short) 100);
            assertEquals("t.last_batch_head",
                    assertThrows(VhostUserProtocolException.class, () -> new InflightQueue("t", r, SIZE).recover(1)).field());
            r.set(ValueLayout.JAVA_SHORT, InflightQueueRegionLayout.VERSION_OFFSET, (short) 9);
            assertEquals("t.version",
                    assertThrows(VhostUserProtocolException.class, () -> new InflightQueue("t", r, SIZE).recover(0)).field());
        }
    }
}
