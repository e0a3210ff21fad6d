package dev.airlock.swiotlb;

import dev.airlock.memory.GuestMemoryException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

import static dev.airlock.swiotlb.DmaDirection.BIDIRECTIONAL;
import static dev.airlock.swiotlb.DmaDirection.FROM_DEVICE;
import static dev.airlock.swiotlb.DmaDirection.TO_DEVICE;
import static dev.airlock.swiotlb.SwiotlbPool.IO_TLB_SEGMENT_BYTES;
import static dev.airlock.swiotlb.SwiotlbPool.IO_TLB_SIZE;
import static dev.airlock.swiotlb.TestVm.RAM_BASE;
import static dev.airlock.swiotlb.TestVm.SHARED_BASE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SwiotlbPoolTest {
    private static final long MIB = 1 << 20;

    private final TestVm vm = new TestVm(4 * MIB, 4 * MIB);

    @AfterEach
    void close() {
        vm.close();
    }

    private SwiotlbPool onePool(long sizeBytes) {
        return vm.pool("blk0", 0, sizeBytes, 1, 0, 0);
    }

    private static long slot(SwiotlbPool pool, long dmaAddr) {
        return (dmaAddr - pool.dmaBase()) / IO_TLB_SIZE;
    }

    // ---- slot counts, segments, sizes

    @Test
    void shouldTakeOneSlotPerStartedTwoKiB() {
        SwiotlbPool pool = onePool(MIB);
        pool.mapSingle(RAM_BASE, 1, TO_DEVICE);
        assertEquals(1, pool.stats().usedSlots());
        pool.mapSingle(RAM_BASE, 2048, TO_DEVICE);
        assertEquals(2, pool.stats().usedSlots());
        pool.mapSingle(RAM_BASE, 2049, TO_DEVICE);
        assertEquals(4, pool.stats().usedSlots());
        pool.mapSingle(RAM_BASE, IO_TLB_SEGMENT_BYTES, TO_DEVICE);
        assertEquals(132, pool.stats().usedSlots());
    }

    @Test
    void shouldNeverPlaceAMappingAcrossASegmentBoundary() {
        SwiotlbPool pool = onePool(2 * IO_TLB_SEGMENT_BYTES);
        long first = pool.mapSingle(RAM_BASE, 127L * IO_TLB_SIZE, TO_DEVICE);
        assertEquals(0, slot(pool, first));
        // Slot 127 is free but a 2-slot mapping there would cross into segment 1.
        long second = pool.mapSingle(RAM_BASE, 3000, TO_DEVICE);
        assertEquals(128, slot(pool, second));
        // A 1-slot mapping still fits in slot 127 once the search wraps.
        pool.mapSingle(RAM_BASE, IO_TLB_SEGMENT_BYTES - 2L * IO_TLB_SIZE, TO_DEVICE);
        long third = pool.mapSingle(RAM_BASE, 100, TO_DEVICE);
        assertEquals(127, slot(pool, third));
    }

    @Test
    void rejectsAMappingLargerThan128Slots() {
        SwiotlbPool pool = onePool(MIB);
        assertEquals(IO_TLB_SEGMENT_BYTES, pool.maxMappingSize());
        var e = assertThrows(IllegalArgumentException.class, () -> pool.mapSingle(RAM_BASE, IO_TLB_SEGMENT_BYTES + 1, TO_DEVICE));
        assertTrue(e.getMessage().contains("262145"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> pool.mapSingle(RAM_BASE, 0, TO_DEVICE));
        assertThrows(IllegalArgumentException.class, () -> pool.mapSingle(RAM_BASE, -1, TO_DEVICE));
        assertEquals(0, pool.stats().usedSlots());
    }

    @Test
    void rejectsAMappingWhoseAlignmentOffsetPushesItPast128Slots() {
        SwiotlbPool pool = vm.pool("nvme", 0, MIB, 1, 0xfff, 0);
        assertEquals(IO_TLB_SEGMENT_BYTES - 0x7ff, pool.maxMappingSize());
        assertThrows(IllegalArgumentException.class, () -> pool.mapSingle(RAM_BASE + 0x10, IO_TLB_SEGMENT_BYTES, TO_DEVICE));
        long dma = pool.mapSingle(RAM_BASE + 0x7ff, pool.maxMappingSize(), TO_DEVICE);
        assertEquals(0x7ff, dma & 0xfff);
        assertEquals(128, pool.stats().usedSlots());
    }

    @Test
    void rejectsAnOriginalOutsideTheDriversMemory() {
        SwiotlbPool pool = onePool(MIB);
        assertThrows(GuestMemoryException.class, () -> pool.mapSingle(0xdead_0000L, 16, TO_DEVICE));
        assertThrows(GuestMemoryException.class, () -> pool.mapSingle(RAM_BASE + 4 * MIB - 8, 16, TO_DEVICE));
        assertEquals(0, pool.stats().usedSlots());
    }

    // ---- alignment

    @Test
    void shouldKeepTheMinAlignMaskBitsOfTheOriginal() {
        SwiotlbPool pool = vm.pool("nvme", 0, MIB, 1, 0xfff, 0);
        long dma = pool.mapSingle(RAM_BASE + 0x123, 2048, FROM_DEVICE);
        assertEquals(0x123, dma & 0xfff);
        assertEquals(2, pool.stats().usedSlots(), "the offset costs one more slot");
        // Bit 11 is above the slot offset: the pool picks a slot whose address has it.
        long high = pool.mapSingle(RAM_BASE + 0x3000 + 0x923, 100, TO_DEVICE);
        assertEquals(0x923, high & 0xfff);
        for (long off = 0; off < 0x4000; off += 0x1f3) {
            long d = pool.mapSingle(RAM_BASE + off, 3000, BIDIRECTIONAL);
            assertEquals(off & 0xfff, d & 0xfff, "offset 0x" + Long.toHexString(off));
            pool.unmapSingle(d, 3000, BIDIRECTIONAL);
        }
    }

    @Test
    void shouldKeepMinAlignMaskBitsAboveTheSlotSize() {
        SwiotlbPool pool = vm.pool("wide", 0, MIB, 2, 0x3fff, 0);
        for (long off = 0; off < 0x8000; off += 0x4a1) {
            long d = pool.mapSingle(RAM_BASE + off, 5000, TO_DEVICE);
            assertEquals(off & 0x3fff, d & 0x3fff, "offset 0x" + Long.toHexString(off));
        }
    }

    @Test
    void shouldAlignTheFirstSlotToTheAllocationAlignment() {
        SwiotlbPool pool = vm.pool("aligned", 0, MIB, 1, 0, 16384);
        long first = pool.mapSingle(RAM_BASE, 1, TO_DEVICE);
        long second = pool.mapSingle(RAM_BASE, 1, TO_DEVICE);
        assertEquals(0, first % 16384);
        assertEquals(0, second % 16384);
        assertNotEquals(first, second);
        // With a minAlignMask below the alignment the offset carries the original's bits.
        SwiotlbPool both = vm.pool("both", MIB, MIB, 1, 0xfff, 16384);
        long d = both.mapSingle(RAM_BASE + 0x2345, 100, TO_DEVICE);
        assertEquals(0x345, d & 0x3fff);
        assertEquals(0, (d - 0x345) % 16384);
    }

    @Test
    void shouldPageAlignPageSizedMappingsByDefault() {
        SwiotlbPool pool = onePool(MIB);
        long small = pool.mapSingle(RAM_BASE, 100, TO_DEVICE);
        assertEquals(0, slot(pool, small));
        long page = pool.mapSingle(RAM_BASE, 4096, TO_DEVICE);
        assertEquals(0, page % 4096);
        assertEquals(2, slot(pool, page));
        long odd = pool.mapSingle(RAM_BASE, 100, TO_DEVICE);
        long page2 = pool.mapSingle(RAM_BASE, 5000, TO_DEVICE);
        assertEquals(4, slot(pool, odd));
        assertEquals(6, slot(pool, page2));
    }

    // ---- copies

    @Test
    void shouldShowTheDeviceTheBouncedBytesThroughItsOwnMappingOfTheMemfd() {
        SwiotlbPool pool = onePool(MIB);
        MemorySegment buffer = vm.ram(0x5000, 10_000);
        TestVm.fill(buffer, 1);
        long dma = pool.mapSingle(RAM_BASE + 0x5000, 10_000, TO_DEVICE);
        assertTrue(pool.contains(dma, 10_000));
        MemorySegment deviceSees = vm.deviceView(dma, 10_000);
        assertNotEquals(deviceSees.address(), pool.cpuSegment(dma, 10_000).address(), "two mappings of one memfd");
        assertArrayEquals(TestVm.bytes(buffer), TestVm.bytes(deviceSees));
        pool.unmapSingle(dma, 10_000, TO_DEVICE);

        long in = pool.mapSingle(RAM_BASE + 0x9000, 300, FROM_DEVICE);
        TestVm.fill(vm.deviceView(in, 300), 9);
        pool.unmapSingle(in, 300, FROM_DEVICE);
        assertArrayEquals(TestVm.bytes(vm.deviceView(in, 300)), TestVm.bytes(vm.ram(0x9000, 300)));
    }

    @Test
    void shouldNotShowAFromDeviceMappingTheBytesOfAnEarlierMapping() {
        SwiotlbPool pool = onePool(IO_TLB_SEGMENT_BYTES); // one segment: the second mapping reuses the slots
        MemorySegment secret = vm.ram(0, IO_TLB_SEGMENT_BYTES);
        secret.fill((byte) 0x5a);
        long first = pool.mapSingle(RAM_BASE, IO_TLB_SEGMENT_BYTES, TO_DEVICE);
        pool.unmapSingle(first, IO_TLB_SEGMENT_BYTES, TO_DEVICE);

        MemorySegment readBuffer = vm.ram(MIB, IO_TLB_SEGMENT_BYTES);
        TestVm.fill(readBuffer, 3);
        byte[] before = TestVm.bytes(readBuffer);
        long dma = pool.mapSingle(RAM_BASE + MIB, IO_TLB_SEGMENT_BYTES, FROM_DEVICE);
        assertEquals(first, dma);
        MemorySegment deviceSees = vm.deviceView(dma, IO_TLB_SEGMENT_BYTES);
        assertArrayEquals(before, TestVm.bytes(deviceSees), "the device must not see the earlier mapping's bytes");

        // The device writes only the first 100 bytes (a short read).
        deviceSees.asSlice(0, 100).fill((byte) 0xee);
        pool.unmapSingle(dma, IO_TLB_SEGMENT_BYTES, FROM_DEVICE);
        byte[] after = TestVm.bytes(readBuffer);
        byte[] expected = before.clone();
        Arrays.fill(expected, 0, 100, (byte) 0xee);
        assertArrayEquals(expected, after, "the original keeps its own bytes where the device did not write");
    }

    @Test
    void shouldCopyBackOnlyForDirectionsFromTheDevice() {
        SwiotlbPool pool = onePool(MIB);
        for (DmaDirection direction : DmaDirection.values()) {
            MemorySegment buffer = vm.ram(0x1000, 4000);
            TestVm.fill(buffer, direction.ordinal());
            byte[] before = TestVm.bytes(buffer);
            long dma = pool.mapSingle(RAM_BASE + 0x1000, 4000, direction);
            vm.deviceView(dma, 4000).fill((byte) 0x77);
            pool.unmapSingle(dma, 4000, direction);
            byte[] expected = before.clone();
            if (direction.fromDevice()) {
                Arrays.fill(expected, (byte) 0x77);
            }
            assertArrayEquals(expected, TestVm.bytes(buffer), direction.toString());
        }
        assertEquals(0, pool.stats().usedSlots());
    }

    @Test
    void shouldSyncPartsOfALiveMapping() {
        SwiotlbPool pool = onePool(MIB);
        MemorySegment buffer = vm.ram(0, 10_000);
        TestVm.fill(buffer, 5);
        long dma = pool.mapSingle(RAM_BASE, 10_000, BIDIRECTIONAL);
        MemorySegment device = vm.deviceView(dma, 10_000);

        buffer.asSlice(100, 100).fill((byte) 1);
        pool.syncForDevice(dma + 100, 100, BIDIRECTIONAL);
        assertEquals(1, device.get(ValueLayout.JAVA_BYTE, 150));
        assertNotEquals(1, device.get(ValueLayout.JAVA_BYTE, 99));

        device.asSlice(5000, 100).fill((byte) 2);
        device.asSlice(6000, 100).fill((byte) 3);
        pool.syncForCpu(dma + 5000, 100, FROM_DEVICE);
        assertEquals(2, buffer.get(ValueLayout.JAVA_BYTE, 5099));
        assertNotEquals(3, buffer.get(ValueLayout.JAVA_BYTE, 6000), "not synced yet");

        // A sync in the other direction of a one-way mapping copies nothing.
        long out = pool.mapSingle(RAM_BASE + 0x8000, 1000, TO_DEVICE);
        vm.deviceView(out, 1000).fill((byte) 9);
        pool.syncForCpu(out, 1000, TO_DEVICE);
        assertNotEquals(9, vm.ram(0x8000, 1).get(ValueLayout.JAVA_BYTE, 0));

        pool.unmapSingle(dma, 10_000, BIDIRECTIONAL);
        assertEquals(3, buffer.get(ValueLayout.JAVA_BYTE, 6000));
    }

    // ---- rejections of wrong use

    @Test
    void rejectsUnmapOfAnAddressThatIsNotMapped() {
        SwiotlbPool pool = onePool(MIB);
        var e = assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(SHARED_BASE, 100, TO_DEVICE));
        assertTrue(e.getMessage().contains("not inside a live mapping"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(SHARED_BASE - 1, 100, TO_DEVICE));
        assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(SHARED_BASE + MIB, 100, TO_DEVICE));
        assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(-1L, 100, TO_DEVICE));
    }

    @Test
    void rejectsUnmapOfAnAddressInsideAMapping() {
        SwiotlbPool pool = onePool(MIB);
        long dma = pool.mapSingle(RAM_BASE, 5000, TO_DEVICE);
        var e = assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(dma + 2048, 2952, TO_DEVICE));
        assertTrue(e.getMessage().contains("not its start"), e.getMessage());
        assertEquals(3, pool.stats().usedSlots());
        pool.unmapSingle(dma, 5000, TO_DEVICE);
        assertEquals(0, pool.stats().usedSlots());
    }

    @Test
    void rejectsUnmapWithADifferentSizeOrDirection() {
        SwiotlbPool pool = onePool(MIB);
        long dma = pool.mapSingle(RAM_BASE, 100, FROM_DEVICE);
        var size = assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(dma, 101, FROM_DEVICE));
        assertTrue(size.getMessage().contains("was mapped with 100 bytes, not 101"), size.getMessage());
        var dir = assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(dma, 100, BIDIRECTIONAL));
        assertTrue(dir.getMessage().contains("FROM_DEVICE"), dir.getMessage());
        assertEquals(1, pool.stats().usedSlots());
        pool.unmapSingle(dma, 100, FROM_DEVICE);
    }

    @Test
    void rejectsASecondUnmap() {
        SwiotlbPool pool = onePool(MIB);
        long dma = pool.mapSingle(RAM_BASE, 100, TO_DEVICE);
        pool.unmapSingle(dma, 100, TO_DEVICE);
        assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(dma, 100, TO_DEVICE));
        assertEquals(0, pool.stats().usedSlots());
    }

    @Test
    void rejectsSyncOutsideTheMapping() {
        SwiotlbPool pool = vm.pool("nvme", 0, MIB, 1, 0xfff, 0);
        long dma = pool.mapSingle(RAM_BASE + 0x10, 5000, BIDIRECTIONAL);
        pool.syncForCpu(dma + 4000, 1000, BIDIRECTIONAL);
        pool.syncForCpu(dma + 5000, 0, BIDIRECTIONAL);
        assertThrows(IllegalArgumentException.class, () -> pool.syncForCpu(dma + 4000, 1001, BIDIRECTIONAL));
        assertThrows(IllegalArgumentException.class, () -> pool.syncForDevice(dma + 5000, 1, BIDIRECTIONAL));
        // In the mapping's last slot but past its end, and in its first slot but before its start.
        assertThrows(IllegalArgumentException.class, () -> pool.syncForCpu(dma + 5001, 1, BIDIRECTIONAL));
        pool.syncForCpu(dma + 5001, 0, BIDIRECTIONAL); // zero bytes: nothing to copy
        assertThrows(IllegalArgumentException.class, () -> pool.syncForCpu(dma + 0x10_0001, 0, BIDIRECTIONAL));
        assertThrows(IllegalArgumentException.class, () -> pool.syncForCpu(dma - 1, 1, BIDIRECTIONAL));
        // In a free slot.
        assertThrows(IllegalArgumentException.class, () -> pool.syncForDevice(dma + 8192, 1, BIDIRECTIONAL));
        pool.unmapSingle(dma, 5000, BIDIRECTIONAL);
        assertThrows(IllegalArgumentException.class, () -> pool.syncForDevice(dma, 1, BIDIRECTIONAL));
    }

    @Test
    void rejectsSyncWhoseSizeOverflows() {
        SwiotlbPool pool = onePool(MIB);
        long dma = pool.mapSingle(RAM_BASE, 5000, BIDIRECTIONAL);
        assertThrows(IllegalArgumentException.class, () -> pool.syncForCpu(dma + 10, Long.MAX_VALUE, BIDIRECTIONAL));
        assertThrows(IllegalArgumentException.class, () -> pool.syncForCpu(dma + 10, -1, BIDIRECTIONAL));
        assertThrows(IllegalArgumentException.class, () -> pool.syncForDevice(dma + 10, Long.MIN_VALUE, BIDIRECTIONAL));
        assertThrows(IllegalArgumentException.class, () -> pool.syncForDevice(dma + Long.MAX_VALUE, 1, BIDIRECTIONAL));
        assertThrows(IllegalArgumentException.class, () -> pool.syncForDevice(dma - 4096 - 1, 4096 + 2, BIDIRECTIONAL));
    }

    @Test
    void rejectsSyncInAnotherDirectionThanTheMappings() {
        SwiotlbPool pool = onePool(MIB);
        long out = pool.mapSingle(RAM_BASE, 100, TO_DEVICE);
        assertThrows(IllegalArgumentException.class, () -> pool.syncForCpu(out, 100, FROM_DEVICE));
        long both = pool.mapSingle(RAM_BASE, 100, BIDIRECTIONAL);
        pool.syncForCpu(both, 100, FROM_DEVICE);
        pool.syncForDevice(both, 100, TO_DEVICE);
    }

    // ---- exhaustion and statistics

    @Test
    void shouldThrowATypedExceptionNamingThePoolWhenFull() {
        SwiotlbPool pool = vm.pool("full-pool", 0, 2 * IO_TLB_SEGMENT_BYTES, 2, 0, 0);
        long a = pool.mapSingle(RAM_BASE, IO_TLB_SEGMENT_BYTES, TO_DEVICE);
        pool.mapSingle(RAM_BASE, IO_TLB_SEGMENT_BYTES, TO_DEVICE);
        var e = assertThrows(SwiotlbFullException.class, () -> pool.mapSingle(RAM_BASE, 1, TO_DEVICE));
        assertEquals("swiotlb pool 'full-pool' is full: no room for 1 bytes (1 contiguous slots, alignment 2048); 256/256 slots used",
                e.getMessage());
        assertEquals(256, e.usedSlots());
        assertEquals(256, e.totalSlots());
        assertEquals(1, e.slotsNeeded());
        assertEquals("full-pool", e.poolName());
        assertEquals(1, pool.stats().failedMappings());
        pool.unmapSingle(a, IO_TLB_SEGMENT_BYTES, TO_DEVICE);
        pool.mapSingle(RAM_BASE, 1, TO_DEVICE);
    }

    @Test
    void shouldFallBackToOtherAreasWhenItsOwnIsFull() {
        SwiotlbPool pool = vm.pool("areas", 0, 4 * IO_TLB_SEGMENT_BYTES, 4, 0, 0);
        for (int i = 0; i < 4; i++) {
            pool.mapSingle(RAM_BASE, IO_TLB_SEGMENT_BYTES, TO_DEVICE);
        }
        assertEquals(512, pool.stats().usedSlots());
        assertEquals(0, pool.stats().freeSlots());
    }

    @Test
    void shouldCountSlotsHighWaterFailuresAndBouncedBytes() {
        SwiotlbPool pool = onePool(MIB);
        long a = pool.mapSingle(RAM_BASE, 1000, TO_DEVICE);
        long b = pool.mapSingle(RAM_BASE, 3000, FROM_DEVICE);
        long c = pool.mapSingle(RAM_BASE, 500, BIDIRECTIONAL);
        pool.syncForDevice(c, 10, BIDIRECTIONAL);
        pool.syncForCpu(c, 20, BIDIRECTIONAL);
        pool.unmapSingle(a, 1000, TO_DEVICE);
        pool.unmapSingle(b, 3000, FROM_DEVICE);
        pool.unmapSingle(c, 500, BIDIRECTIONAL);
        pool.mapSingle(RAM_BASE, 1, TO_DEVICE);
        assertThrows(SwiotlbFullException.class, () -> pool.alloc(2 * MIB, 4096));
        assertEquals(new SwiotlbStats("blk0", 512, 1, 4, 1, 1000 + 3000 + 500 + 10 + 1, 3000 + 500 + 20), pool.stats());
    }

    // ---- coherent allocations

    @Test
    void shouldAllocateZeroedAlignedCoherentMemory() {
        SwiotlbPool pool = onePool(IO_TLB_SEGMENT_BYTES);
        vm.ram(0, IO_TLB_SEGMENT_BYTES).fill((byte) 0xff);
        long dirty = pool.mapSingle(RAM_BASE, IO_TLB_SEGMENT_BYTES, TO_DEVICE); // every slot now holds 0xff
        pool.unmapSingle(dirty, IO_TLB_SEGMENT_BYTES, TO_DEVICE);
        pool.mapSingle(RAM_BASE, 100, TO_DEVICE);

        long ring = pool.alloc(5000, 4096);
        assertEquals(0, ring % 4096);
        MemorySegment view = pool.cpuSegment(ring, 5000);
        assertTrue(TestVm.bytes(view).length == 5000 && allZero(TestVm.bytes(view)));
        assertEquals(1 + 3, pool.stats().usedSlots());
        view.fill((byte) 4);
        assertEquals(4, vm.deviceView(ring + 4999, 1).get(ValueLayout.JAVA_BYTE, 0));
        pool.free(ring, 5000);
        assertEquals(1, pool.stats().usedSlots());
    }

    @Test
    void shouldAllocateCoherentMemoryAcrossSegmentsAndAreas() {
        SwiotlbPool pool = vm.pool("rings", 0, 2 * MIB, 4, 0, 0);
        long small = pool.mapSingle(RAM_BASE, 100, TO_DEVICE);
        long big = pool.alloc(600 * 1024, 4096);
        assertEquals(0, slot(pool, big) % 128, "large allocations start at a segment");
        assertEquals(1 + 300, pool.stats().usedSlots());
        assertTrue(allZero(TestVm.bytes(pool.cpuSegment(big, 600 * 1024))));
        // The rest of the pool still serves mappings, none inside the allocation.
        for (int i = 0; i < 40; i++) {
            long d = pool.mapSingle(RAM_BASE, 4096, TO_DEVICE);
            assertTrue(d + 4096 <= big || d >= big + 600 * 1024);
        }
        pool.free(big, 600 * 1024);
        assertEquals(1 + 80, pool.stats().usedSlots());
        pool.unmapSingle(small, 100, TO_DEVICE);

        SwiotlbPool whole = vm.pool("whole", 2 * MIB, 2 * MIB, 3, 0, 0);
        long all = whole.alloc(2 * MIB, 1 << 20);
        assertEquals(1024, whole.stats().usedSlots());
        assertThrows(SwiotlbFullException.class, () -> whole.alloc(1, 1));
        whole.free(all, 2 * MIB);
        assertEquals(0, whole.stats().usedSlots());
    }

    @Test
    void rejectsMixingCoherentAllocationsAndStreamingMappings() {
        SwiotlbPool pool = onePool(MIB);
        long ring = pool.alloc(4096, 4096);
        long dma = pool.mapSingle(RAM_BASE, 4096, TO_DEVICE);
        assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(ring, 4096, BIDIRECTIONAL));
        assertThrows(IllegalArgumentException.class, () -> pool.syncForCpu(ring, 1, BIDIRECTIONAL));
        assertThrows(IllegalArgumentException.class, () -> pool.free(dma, 4096));
        assertThrows(IllegalArgumentException.class, () -> pool.free(ring, 4095));
        assertThrows(IllegalArgumentException.class, () -> pool.free(ring + 2048, 2048));
        pool.free(ring, 4096);
        assertThrows(IllegalArgumentException.class, () -> pool.free(ring, 4096));
        assertEquals(2, pool.stats().usedSlots());
    }

    @Test
    void rejectsBadCoherentRequests() {
        SwiotlbPool pool = onePool(MIB);
        assertThrows(IllegalArgumentException.class, () -> pool.alloc(0, 4096));
        assertThrows(IllegalArgumentException.class, () -> pool.alloc(100, 3000));
        assertThrows(IllegalArgumentException.class, () -> pool.alloc(100, 0));
        assertThrows(SwiotlbFullException.class, () -> pool.alloc(MIB + 1, 4096));
        assertThrows(SwiotlbFullException.class, () -> pool.alloc(Long.MAX_VALUE, 4096));
        assertThrows(IllegalArgumentException.class, () -> pool.cpuSegment(SHARED_BASE + MIB - 10, 11));
    }

    // ---- construction

    @Test
    void rejectsBadPoolArguments() {
        MemorySegment shared = vm.shared.segment();
        var driver = vm.driver;
        assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", shared.asSlice(0, 3000), SHARED_BASE, driver, 1, 0, 0), "not a multiple of 2 KiB");
        assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", shared.asSlice(1024, 4096), SHARED_BASE + 1024, driver, 1, 0, 0), "dmaBase unaligned");
        assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", shared.asSlice(0, 4096), SHARED_BASE, driver, 0, 0, 0), "no areas");
        assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", shared.asSlice(0, MIB), SHARED_BASE, driver, 5, 0, 0), "more areas than segments");
        assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", shared.asSlice(0, MIB), SHARED_BASE, driver, 1, 0x1000, 0), "mask not of low bits");
        assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", shared.asSlice(0, MIB), SHARED_BASE, driver, 1, -1, 0), "negative mask");
        assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", shared.asSlice(0, MIB), SHARED_BASE, driver, 1, 0, 3000), "alignment not a power of two");
        assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", shared.asSlice(0, MIB), SHARED_BASE, driver, 1, 0, 1L << 31), "alignment too large");
        assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", shared.asSlice(4096, MIB), SHARED_BASE, driver, 1, 0, 0), "view of another address");
        assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", shared.asSlice(0, MIB), 0x7000_0000L, driver, 1, 0, 0), "not mapped");
        assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", shared, SHARED_BASE + 4096, driver, 1, 0, 0), "runs past the region");
    }

    @Test
    void rejectsAPoolInPrivateMemory() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> new SwiotlbPool("p", vm.ram.segment().asSlice(0, MIB), RAM_BASE, vm.driver, 1, 0, 0));
        assertTrue(e.getMessage().contains("not a shared region"), e.getMessage());
    }

    @Test
    void shouldCreateAPoolWithDefaults() {
        SwiotlbPool pool = SwiotlbPool.create("default", vm.shared.segment(), SHARED_BASE, vm.driver);
        assertEquals(2048, pool.totalSlots());
        assertTrue(pool.areaCount() >= 1 && pool.areaCount() <= 16);
        assertEquals(0, pool.minAlignMask());
        assertEquals(0, pool.allocAlignment());
        assertEquals(4 * MIB, pool.sizeBytes());
        assertTrue(pool.toString().contains("default"));
    }

    private static boolean allZero(byte[] bytes) {
        for (byte b : bytes) {
            if (b != 0) {
                return false;
            }
        }
        return true;
    }
}
