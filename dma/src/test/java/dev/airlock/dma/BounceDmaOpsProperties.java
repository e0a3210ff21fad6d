package dev.airlock.dma;

import dev.airlock.memory.RegionKind;
import dev.airlock.swiotlb.DmaDirection;
import dev.airlock.swiotlb.SwiotlbPool;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Whatever the driver asks, bounce DMA ops answer with a pool address or a mapping failure. One
 * random case per seed; {@code -Dairlock.seed=N} reruns one case, {@code -Dairlock.tries=N} runs more.
 */
class BounceDmaOpsProperties {
    private static final long MIB = 1 << 20;

    static LongStream seeds() {
        Long only = Long.getLong("airlock.seed");
        return only != null ? LongStream.of(only) : LongStream.range(0, Integer.getInteger("airlock.tries", 200));
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void shouldAnswerOnlyWithPoolAddresses(long seed) {
        List<long[]> requests = requests(new SplittableRandom(seed));
        try (TestVm vm = new TestVm(MIB, 2 * MIB)) {
            SwiotlbPool pool = vm.pool("p", MIB, MIB, 2, 0xfff, 0);
            BounceDmaOps ops = new BounceDmaOps(pool);
            List<long[]> live = new ArrayList<>();
            for (long[] request : requests) {
                long gpa = request[0];
                long length = request[1];
                DmaDirection direction = DmaDirection.values()[(int) request[2]];
                try {
                    long dma = ops.mapSingle(gpa, length, direction);
                    assertTrue(pool.contains(dma, length));
                    assertEquals(RegionKind.SHARED, vm.driver.regionOf(dma, length).kind());
                    live.add(new long[] {dma, length, request[2]});
                } catch (DmaMappingException | IllegalArgumentException expected) {
                    // Too large, outside the driver's memory, or no room: refused, never mapped.
                }
            }
            for (long[] m : live) {
                ops.unmapSingle(m[0], m[1], DmaDirection.values()[(int) m[2]]);
            }
            assertEquals(0, pool.stats().usedSlots());
        }
    }

    /** Up to 40 requests: addresses near private RAM, near the shared region or anywhere; lengths small, large or wild. */
    private static List<long[]> requests(SplittableRandom r) {
        int count = r.nextInt(41);
        List<long[]> requests = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            long gpa = switch (r.nextInt(3)) {
                case 0 -> r.nextLong(TestVm.RAM_BASE - 4096, TestVm.RAM_BASE + MIB + 4097);
                case 1 -> r.nextLong(TestVm.SHARED_BASE - 4096, TestVm.SHARED_BASE + 2 * MIB + 4097);
                default -> r.nextLong();
            };
            long length = switch (r.nextInt(3)) {
                case 0 -> r.nextLong(-1, 300_001);
                case 1 -> r.nextLong(1, 5001);
                default -> r.nextLong();
            };
            requests.add(new long[] {gpa, length, r.nextInt(3)});
        }
        return requests;
    }
}
