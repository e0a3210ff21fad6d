package dev.airlock.swiotlb;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Optional;

import static dev.airlock.swiotlb.TestVm.RAM_BASE;
import static dev.airlock.swiotlb.TestVm.SHARED_BASE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SwiotlbPoolsTest {
    private static final long MIB = 1 << 20;

    private final TestVm vm = new TestVm(MIB, 4 * MIB);
    private final SwiotlbPools pools = new SwiotlbPools();

    @AfterEach
    void close() {
        vm.close();
    }

    @Test
    void shouldFindThePoolThatOwnsAnAddress() {
        SwiotlbPool high = vm.pool("high", 2 * MIB, MIB, 1, 0, 0);
        SwiotlbPool low = vm.pool("low", 0, MIB, 1, 0, 0);
        pools.register(high);
        pools.register(low);
        assertEquals(List.of(low, high), pools.pools());
        assertSame(low, pools.find(SHARED_BASE));
        assertSame(low, pools.find(SHARED_BASE + MIB - 1));
        assertNull(pools.find(SHARED_BASE + MIB));
        assertSame(high, pools.find(SHARED_BASE + 2 * MIB));
        assertSame(high, pools.find(SHARED_BASE + 3 * MIB - 1));
        assertNull(pools.find(SHARED_BASE + 3 * MIB));
        assertNull(pools.find(SHARED_BASE - 1));
        assertNull(pools.find(-1L));
        assertTrue(pools.isSwiotlbBuffer(high.mapSingle(RAM_BASE, 100, DmaDirection.TO_DEVICE)));
        assertFalse(pools.isSwiotlbBuffer(RAM_BASE));
    }

    @Test
    void rejectsOverlappingPoolsAndTakenNames() {
        pools.register(vm.pool("a", MIB, MIB, 1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> pools.register(vm.pool("b", MIB + 512 * 1024, MIB, 1, 0, 0)));
        assertThrows(IllegalArgumentException.class, () -> pools.register(vm.pool("c", 0, MIB + 2048, 1, 0, 0)));
        assertThrows(IllegalArgumentException.class, () -> pools.register(vm.pool("d", MIB + 4096, 4096, 1, 0, 0)));
        assertThrows(IllegalArgumentException.class, () -> pools.register(vm.pool("a", 3 * MIB, MIB, 1, 0, 0)));
        pools.register(vm.pool("e", 0, MIB, 1, 0, 0));
        pools.register(vm.pool("f", 2 * MIB, MIB, 1, 0, 0));
        assertEquals(3, pools.pools().size());
    }

    @Test
    void shouldUnregisterAnIdlePoolAndItsAssignments() {
        SwiotlbPool pool = vm.pool("blk", 0, MIB, 1, 0, 0);
        pools.register(pool);
        pools.assign("virtio-blk0", pool);
        assertEquals(Optional.of(pool), pools.poolFor("virtio-blk0"));
        long dma = pool.mapSingle(RAM_BASE, 10, DmaDirection.TO_DEVICE);
        assertThrows(IllegalStateException.class, () -> pools.unregister(pool));
        pool.unmapSingle(dma, 10, DmaDirection.TO_DEVICE);
        assertTrue(pools.unregister(pool));
        assertFalse(pools.unregister(pool));
        assertNull(pools.find(SHARED_BASE));
        assertEquals(Optional.empty(), pools.poolFor("virtio-blk0"));
        // The range is free again.
        pools.register(vm.pool("blk-again", 0, MIB, 1, 0, 0));
    }

    @Test
    void shouldAssignPoolsPerDevice() {
        SwiotlbPool blk = vm.pool("blk", 0, MIB, 1, 0, 0);
        SwiotlbPool net = vm.pool("net", MIB, MIB, 1, 0, 0);
        pools.register(blk);
        pools.register(net);
        pools.assign("virtio-blk0", blk);
        pools.assign("virtio-net0", net);
        pools.assign("virtio-rng0", blk);
        assertSame(blk, pools.poolFor("virtio-rng0").orElseThrow());
        assertSame(net, pools.poolFor("virtio-net0").orElseThrow());
        pools.assign("virtio-rng0", net);
        assertSame(net, pools.poolFor("virtio-rng0").orElseThrow());
        assertTrue(pools.unassign("virtio-rng0"));
        assertFalse(pools.unassign("virtio-rng0"));
        assertTrue(pools.poolFor("virtio-rng0").isEmpty());
    }

    @Test
    void rejectsAssigningAnUnregisteredPool() {
        SwiotlbPool pool = vm.pool("blk", 0, MIB, 1, 0, 0);
        assertThrows(IllegalArgumentException.class, () -> pools.assign("virtio-blk0", pool));
        assertTrue(pools.poolFor("virtio-blk0").isEmpty());
    }

    @Test
    void shouldLookUpWhileAnotherThreadRegistersAndUnregisters() throws InterruptedException {
        SwiotlbPool fixed = vm.pool("fixed", 0, MIB, 1, 0, 0);
        pools.register(fixed);
        SwiotlbPool[] moving = {vm.pool("m1", MIB, MIB, 1, 0, 0), vm.pool("m2", 2 * MIB, MIB, 1, 0, 0)};
        Thread churn = Thread.ofPlatform().start(() -> {
            for (int i = 0; i < 2000; i++) {
                SwiotlbPool p = moving[i & 1];
                pools.register(p);
                pools.unregister(p);
            }
        });
        long misses = 0;
        while (churn.isAlive()) {
            if (pools.find(SHARED_BASE + 4096) != fixed) {
                misses++;
            }
            SwiotlbPool m = pools.find(SHARED_BASE + MIB + 4096);
            if (m != null && m != moving[0]) {
                misses++;
            }
        }
        churn.join();
        assertEquals(0, misses);
        assertEquals(List.of(fixed), pools.pools());
    }
}
