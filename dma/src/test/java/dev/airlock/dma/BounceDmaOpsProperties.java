package dev.airlock.dma;

import dev.airlock.memory.RegionKind;
import dev.airlock.swiotlb.DmaDirection;
import dev.airlock.swiotlb.SwiotlbPool;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Whatever the driver asks, bounce DMA ops answer with a pool address or a mapping failure. */
class BounceDmaOpsProperties {
    private static final long MIB = 1 << 20;

    @Property(tries = 200)
    void shouldAnswerOnlyWithPoolAddresses(@ForAll("requests") List<long[]> requests) {
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

    @Provide
    Arbitrary<List<long[]>> requests() {
        Arbitrary<Long> gpa = Arbitraries.oneOf(List.of(
                Arbitraries.longs().between(TestVm.RAM_BASE - 4096, TestVm.RAM_BASE + MIB + 4096),
                Arbitraries.longs().between(TestVm.SHARED_BASE - 4096, TestVm.SHARED_BASE + 2 * MIB + 4096),
                Arbitraries.longs()));
        Arbitrary<Long> length = Arbitraries.oneOf(List.of(
                Arbitraries.longs().between(-1, 300_000),
                Arbitraries.longs().between(1, 5000),
                Arbitraries.longs()));
        Arbitrary<Long> direction = Arbitraries.longs().between(0, 2);
        return net.jqwik.api.Combinators.combine(gpa, length, direction).as((g, l, d) -> new long[] {g, l, d})
                .list().ofMaxSize(40);
    }
}
