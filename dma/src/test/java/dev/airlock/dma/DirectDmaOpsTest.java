package dev.airlock.dma;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.swiotlb.SwiotlbPool;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;

import static dev.airlock.dma.TestVm.RAM_BASE;
import static dev.airlock.dma.TestVm.SHARED_BASE;
import static dev.airlock.swiotlb.DmaDirection.BIDIRECTIONAL;
import static dev.airlock.swiotlb.DmaDirection.FROM_DEVICE;
import static dev.airlock.swiotlb.DmaDirection.TO_DEVICE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DirectDmaOpsTest {
    private static final long MIB = 1 << 20;

    private final TestVm vm = new TestVm(MIB, 4 * MIB);
    private final SwiotlbPool rings = vm.pool("rings", 3 * MIB, MIB, 1, 0, 0);
    private final DirectDmaOps ops = new DirectDmaOps(vm.driver, rings);

    @AfterEach
    void close() {
        vm.close();
    }

    @Test
    void shouldHandTheDeviceTheSharedAddressItself() {
        long gpa = SHARED_BASE + 0x2000;
        vm.driver.translate(gpa, 8).set(ValueLayout.JAVA_LONG, 0, 0x1122334455667788L);
        assertEquals(gpa, ops.mapSingle(gpa, 8, TO_DEVICE));
        assertEquals(0x1122334455667788L, vm.deviceView(gpa, 8).get(ValueLayout.JAVA_LONG, 0), "no copy needed");
        ops.syncForDevice(gpa, 8, TO_DEVICE);
        ops.syncForCpu(gpa, 0, TO_DEVICE);
        ops.unmapSingle(gpa, 8, TO_DEVICE);
        assertEquals(SHARED_BASE + 4 * MIB - 1, ops.mapSingle(SHARED_BASE + 4 * MIB - 1, 1, FROM_DEVICE));
    }

    @Test
    void rejectsPrivateMemoryNamingTheAddress() {
        var e = assertThrows(DmaMappingException.class, () -> ops.mapSingle(RAM_BASE + 0x1230, 64, FROM_DEVICE));
        assertTrue(e.getMessage().contains("0x10001230"), e.getMessage());
        assertTrue(e.getMessage().contains("private"), e.getMessage());
    }

    @Test
    void rejectsRangesThatLeaveTheSharedRegion() {
        assertThrows(DmaMappingException.class, () -> ops.mapSingle(SHARED_BASE + 4 * MIB - 8, 16, TO_DEVICE));
        assertThrows(DmaMappingException.class, () -> ops.mapSingle(SHARED_BASE - 8, 16, TO_DEVICE));
        assertThrows(DmaMappingException.class, () -> ops.mapSingle(0x7000_0000L, 16, TO_DEVICE));
        assertThrows(DmaMappingException.class, () -> ops.mapSingle(SHARED_BASE + 16, Long.MAX_VALUE, TO_DEVICE));
        assertThrows(DmaMappingException.class, () -> ops.mapSingle(-16L, 32, TO_DEVICE));
        assertThrows(IllegalArgumentException.class, () -> ops.mapSingle(SHARED_BASE, 0, TO_DEVICE));
    }

    @Test
    void rejectsUnmapAndSyncOfMemoryThatIsNotShared() {
        assertThrows(IllegalArgumentException.class, () -> ops.unmapSingle(RAM_BASE, 64, BIDIRECTIONAL));
        assertThrows(IllegalArgumentException.class, () -> ops.syncForCpu(RAM_BASE, 64, BIDIRECTIONAL));
        assertThrows(IllegalArgumentException.class, () -> ops.syncForDevice(SHARED_BASE + 4 * MIB, 1, BIDIRECTIONAL));
        assertThrows(IllegalArgumentException.class, () -> ops.syncForDevice(SHARED_BASE, -1, BIDIRECTIONAL));
    }

    @Test
    void shouldAllocateCoherentBuffersFromItsPool() {
        CoherentBuffer ring = ops.allocCoherent(8192, 4096);
        assertTrue(rings.contains(ring.dmaAddr(), 8192));
        assertEquals(0, ring.dmaAddr() % 4096);
        ring.segment().set(ValueLayout.JAVA_SHORT, 2, (short) 5);
        assertEquals(5, vm.deviceView(ring.dmaAddr() + 2, 2).get(ValueLayout.JAVA_SHORT, 0));
        ops.freeCoherent(ring);
        assertEquals(0, rings.stats().usedSlots());
    }

    @Test
    void rejectsACoherentPoolOfAnotherAddressSpace() {
        assertThrows(IllegalArgumentException.class, () -> new DirectDmaOps(new GuestAddressSpace("other"), rings));
    }
}
