package dev.airlock.testkit;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;
import dev.airlock.memory.SharedMemory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Real guest memory for tests: a driver VM with private RAM and a shared region (a memfd), and a
 * device VM that maps the same memfd a second time at another base (the non-linear mapping). No
 * mocks: the two views are two {@code mmap}s of one file.
 */
public class TwoVmMemory implements AutoCloseable {
    /** Where the driver VM sees its private RAM. */
    public static final long RAM_BASE = 0x1000_0000L;
    /** Where the driver VM sees the shared region: its DMA addresses are in this range. */
    public static final long SHARED_BASE = 0x8000_0000L;
    /** Where the device VM sees the same shared region. */
    public static final long DEVICE_SHARED_BASE = 0x4_0000_0000L;

    /** The driver VM's private RAM. */
    public final PrivateMemory ram;
    /** The driver VM's mapping of the shared memfd. */
    public final SharedMemory shared;
    /** The device VM's mapping of the same memfd. */
    public final SharedMemory deviceMapping;
    /** The driver VM's address space: RAM at {@link #RAM_BASE}, the shared region at {@link #SHARED_BASE}. */
    public final GuestAddressSpace driver = new GuestAddressSpace("vm2");
    /** The device VM's address space: the shared region at {@link #DEVICE_SHARED_BASE}. */
    public final GuestAddressSpace device = new GuestAddressSpace("vm1");

    /**
     * Maps the memory.
     *
     * @param ramBytes    private RAM of the driver VM, a multiple of 4096
     * @param sharedBytes the shared region, a multiple of 4096
     */
    public TwoVmMemory(long ramBytes, long sharedBytes) {
        ram = new PrivateMemory("vm2:ram", ramBytes);
        shared = SharedMemory.create("vm1-vm2", sharedBytes);
        deviceMapping = SharedMemory.map("vm1-vm2", shared.fd(), sharedBytes, false);
        driver.add(ram.region(RAM_BASE));
        driver.add(shared.region(SHARED_BASE));
        device.add(deviceMapping.region(DEVICE_SHARED_BASE));
    }

    /**
     * The device's view of a DMA address range: its own mapping of the memfd, at its own base.
     *
     * @param dmaAddr     a DMA address (a driver gpa in the shared region)
     * @param lengthBytes the length
     * @return the device's slice
     */
    public MemorySegment deviceView(long dmaAddr, long lengthBytes) {
        return device.translate(dmaAddr - SHARED_BASE + DEVICE_SHARED_BASE, lengthBytes);
    }

    /**
     * The driver's private RAM at {@code RAM_BASE + offset}.
     *
     * @param offset      offset into the RAM
     * @param lengthBytes the length
     * @return the slice
     */
    public MemorySegment ram(long offset, long lengthBytes) {
        return driver.translate(RAM_BASE + offset, lengthBytes);
    }

    /**
     * Fills a segment with a pattern that depends on the seed and the position.
     *
     * @param segment the segment
     * @param seed    the seed
     */
    public static void fill(MemorySegment segment, long seed) {
        for (long i = 0; i < segment.byteSize(); i++) {
            segment.set(ValueLayout.JAVA_BYTE, i, (byte) (seed * 31 + i * 7 + (i >>> 8)));
        }
    }

    /**
     * The bytes of a segment.
     *
     * @param segment the segment
     * @return a copy
     */
    public static byte[] bytes(MemorySegment segment) {
        return segment.toArray(ValueLayout.JAVA_BYTE);
    }

    /** Unmaps everything. */
    @Override
    public void close() {
        deviceMapping.close();
        shared.close();
        ram.close();
    }
}
