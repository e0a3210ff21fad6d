package dev.airlock.dma;

import dev.airlock.memory.GuestMemoryException;
import dev.airlock.memory.RegionKind;
import dev.airlock.swiotlb.DmaDirection;
import dev.airlock.swiotlb.SwiotlbFullException;
import dev.airlock.swiotlb.SwiotlbPool;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.Random;

import static dev.airlock.dma.TestVm.RAM_BASE;
import static dev.airlock.dma.TestVm.SHARED_BASE;
import static dev.airlock.swiotlb.DmaDirection.BIDIRECTIONAL;
import static dev.airlock.swiotlb.DmaDirection.FROM_DEVICE;
import static dev.airlock.swiotlb.DmaDirection.TO_DEVICE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BounceDmaOpsTest {
    private static final long MIB = 1 << 20;
    /** The pool sits 1 MiB into the shared region; the rest of the region is not the pool. */
    private static final long POOL_OFFSET = MIB;

    private final TestVm vm = new TestVm(4 * MIB, 4 * MIB);
    private final SwiotlbPool pool = vm.pool("blk0", POOL_OFFSET, MIB, 2, 0, 0);
    private final BounceDmaOps ops = new BounceDmaOps(pool);

    private record Mapping(long dma, long length, DmaDirection direction) {
    }

    @AfterEach
    void close() {
        vm.close();
    }

    @Test
    void shouldNeverReturnAnAddressOutsideThePool() {
        Random random = new Random(42);
        ArrayDeque<Mapping> live = new ArrayDeque<>();
        for (int i = 0; i < 3000; i++) {
            if (live.size() > 20 || (!live.isEmpty() && random.nextInt(3) == 0)) {
                Mapping m = random.nextBoolean() ? live.pollFirst() : live.pollLast();
                ops.unmapSingle(m.dma(), m.length(), m.direction());
                continue;
            }
            long length = 1 + random.nextInt(random.nextBoolean() ? 5000 : (int) ops.maxMappingSize());
            // Originals in private RAM, and in the shared region outside the pool: both are bounced.
            long gpa = random.nextInt(4) == 0 ? SHARED_BASE + random.nextInt((int) (POOL_OFFSET - length))
                    : RAM_BASE + random.nextInt((int) (4 * MIB - length));
            DmaDirection direction = DmaDirection.values()[random.nextInt(3)];
            long dma;
            try {
                dma = ops.mapSingle(gpa, length, direction);
            } catch (DmaMappingException e) {
                assertInstanceOf(SwiotlbFullException.class, e.getCause());
                continue;
            }
            assertTrue(pool.contains(dma, length), "0x" + Long.toHexString(dma) + " outside " + pool);
            assertEquals(RegionKind.SHARED, vm.driver.regionOf(dma, length).kind());
            live.add(new Mapping(dma, length, direction));
        }
        live.forEach(m -> ops.unmapSingle(m.dma(), m.length(), m.direction()));
        assertEquals(0, pool.stats().usedSlots());
    }

    @Test
    void shouldBounceDataToTheDeviceAndBack() {
        MemorySegment request = vm.ram(0x3000, 4096);
        TestVm.fill(request, 7);
        long out = ops.mapSingle(RAM_BASE + 0x3000, 4096, TO_DEVICE);
        assertArrayEquals(TestVm.bytes(request), TestVm.bytes(vm.deviceView(out, 4096)), "device sees the request");

        long in = ops.mapSingle(RAM_BASE + 0x10_0000, 65536, FROM_DEVICE);
        MemorySegment device = vm.deviceView(in, 65536);
        TestVm.fill(device, 8);
        ops.syncForCpu(in, 512, FROM_DEVICE);
        assertArrayEquals(TestVm.bytes(device.asSlice(0, 512)), TestVm.bytes(vm.ram(0x10_0000, 512)));
        ops.unmapSingle(in, 65536, FROM_DEVICE);
        ops.unmapSingle(out, 4096, TO_DEVICE);
        assertArrayEquals(TestVm.bytes(device), TestVm.bytes(vm.ram(0x10_0000, 65536)), "driver sees the response");
        assertEquals(0, pool.stats().usedSlots());
    }

    @Test
    void shouldWrapPoolExhaustionKeepingTheCause() {
        SwiotlbPool tiny = vm.pool("tiny", 0, 8192, 1, 0, 0);
        BounceDmaOps small = new BounceDmaOps(tiny);
        small.mapSingle(RAM_BASE, 8192, BIDIRECTIONAL);
        var e = assertThrows(DmaMappingException.class, () -> small.mapSingle(RAM_BASE, 1, TO_DEVICE));
        assertInstanceOf(SwiotlbFullException.class, e.getCause());
        assertTrue(e.getMessage().contains("'tiny'") && e.getMessage().contains("4/4 slots used"), e.getMessage());
        assertEquals(1, tiny.stats().failedMappings());
        var coherent = assertThrows(DmaMappingException.class, () -> small.allocCoherent(4096, 4096));
        assertInstanceOf(SwiotlbFullException.class, coherent.getCause());
    }

    @Test
    void rejectsABufferOutsideTheDriversMemory() {
        var e = assertThrows(DmaMappingException.class, () -> ops.mapSingle(0x7000_0000L, 64, TO_DEVICE));
        assertInstanceOf(GuestMemoryException.class, e.getCause());
        assertTrue(e.getMessage().contains("0x70000000"), e.getMessage());
        assertThrows(DmaMappingException.class, () -> ops.mapSingle(RAM_BASE + 4 * MIB - 10, 64, TO_DEVICE));
        assertEquals(0, pool.stats().usedSlots());
    }

    @Test
    void rejectsABufferLargerThanOneMappingAndEmptyBuffers() {
        var e = assertThrows(DmaMappingException.class, () -> ops.mapSingle(RAM_BASE, ops.maxMappingSize() + 1, TO_DEVICE));
        assertTrue(e.getMessage().contains("split"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ops.mapSingle(RAM_BASE, 0, TO_DEVICE));
        assertEquals(0, pool.stats().failedMappings());
    }

    @Test
    void rejectsWrongUnmapsAndSyncs() {
        long dma = ops.mapSingle(RAM_BASE, 100, TO_DEVICE);
        assertThrows(IllegalArgumentException.class, () -> ops.unmapSingle(dma, 99, TO_DEVICE));
        assertThrows(IllegalArgumentException.class, () -> ops.unmapSingle(RAM_BASE, 100, TO_DEVICE));
        assertThrows(IllegalArgumentException.class, () -> ops.syncForDevice(dma + 50, 51, TO_DEVICE));
        ops.unmapSingle(dma, 100, TO_DEVICE);
    }

    @Test
    void shouldAllocateZeroedCoherentBuffersInsideThePool() {
        CoherentBuffer ring = ops.allocCoherent(10_000, 4096);
        assertEquals(10_000, ring.sizeBytes());
        assertEquals(0, ring.dmaAddr() % 4096);
        assertTrue(pool.contains(ring.dmaAddr(), ring.sizeBytes()));
        assertEquals(-1, ring.segment().mismatch(MemorySegment.ofArray(new byte[10_000])));
        ring.segment().set(ValueLayout.JAVA_INT, 16, 0xcafe);
        assertEquals(0xcafe, vm.deviceView(ring.dmaAddr() + 16, 4).get(ValueLayout.JAVA_INT, 0), "the device sees the ring in place");
        ops.freeCoherent(ring);
        assertEquals(0, pool.stats().usedSlots());
        CoherentBuffer large = ops.allocCoherent(600 * 1024, 4096);
        ops.freeCoherent(large);
    }

    @Test
    void rejectsFreeingABufferThatIsNotThePools() {
        CoherentBuffer ring = ops.allocCoherent(4096, 4096);
        MemorySegment elsewhere = vm.ram(0, 4096);
        assertThrows(IllegalArgumentException.class, () -> ops.freeCoherent(new CoherentBuffer(ring.dmaAddr(), elsewhere)));
        assertThrows(IllegalArgumentException.class,
                () -> ops.freeCoherent(new CoherentBuffer(RAM_BASE, elsewhere)));
        assertThrows(IllegalArgumentException.class,
                () -> ops.freeCoherent(new CoherentBuffer(ring.dmaAddr(), ring.segment().asSlice(0, 2048))));
        ops.freeCoherent(ring);
        assertThrows(IllegalArgumentException.class, () -> ops.freeCoherent(ring));
    }
}
