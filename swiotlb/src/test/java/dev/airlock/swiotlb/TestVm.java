package dev.airlock.swiotlb;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;
import dev.airlock.memory.SharedMemory;

import java.lang.foreign.MemorySegment;

/**
 * Real guest memory for the tests: a driver VM with private RAM and a shared region (a memfd), and
 * a device VM that maps the same memfd a second time at another base (the non-linear mapping).
 */
final class TestVm implements AutoCloseable {
    static final long RAM_BASE = 0x1000_0000L;
    static final long SHARED_BASE = 0x8000_0000L;
    static final long DEVICE_SHARED_BASE = 0x4_0000_0000L;

    final PrivateMemory ram;
    final SharedMemory shared;
    final SharedMemory deviceMapping;
    final GuestAddressSpace driver = new GuestAddressSpace("vm2");
    final GuestAddressSpace device = new GuestAddressSpace("vm1");

    TestVm(long ramBytes, long sharedBytes) {
        ram = new PrivateMemory("vm2:ram", ramBytes);
        shared = SharedMemory.create("vm1-vm2", sharedBytes);
        deviceMapping = SharedMemory.map("vm1-vm2", shared.fd(), sharedBytes, false);
        driver.add(ram.region(RAM_BASE));
        driver.add(shared.region(SHARED_BASE));
        device.add(deviceMapping.region(DEVICE_SHARED_BASE));
    }

    /** A pool over {@code [offset, offset + sizeBytes)} of the shared region. */
    SwiotlbPool pool(String name, long offset, long sizeBytes, int areas, long minAlignMask, long allocAlignment) {
        return new SwiotlbPool(name, shared.segment().asSlice(offset, sizeBytes), SHARED_BASE + offset, driver, areas,
                minAlignMask, allocAlignment);
    }

    /** The device's view of a DMA address range: its own mapping of the memfd, at its own base. */
    MemorySegment deviceView(long dmaAddr, long lengthBytes) {
        return device.translate(dmaAddr - SHARED_BASE + DEVICE_SHARED_BASE, lengthBytes);
    }

    /** The driver's private RAM at {@code RAM_BASE + offset}. */
    MemorySegment ram(long offset, long lengthBytes) {
        return driver.translate(RAM_BASE + offset, lengthBytes);
    }

    static void fill(MemorySegment segment, long seed) {
        for (long i = 0; i < segment.byteSize(); i++) {
            segment.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (seed * 31 + i * 7 + (i >>> 8)));
        }
    }

    static byte[] bytes(MemorySegment segment) {
        return segment.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
    }

    @Override
    public void close() {
        deviceMapping.close();
        shared.close();
        ram.close();
    }
}
