package dev.airlock.virtio;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;
import dev.airlock.memory.SharedMemory;

import java.lang.foreign.MemorySegment;
import java.util.BitSet;

/**
 * Real memory for a driver and a device: one memfd mapped twice (the driver's and the device's
 * mapping, at different host addresses), plus the driver's private RAM. The driver's address space
 * holds private RAM at {@link #PRIVATE_GPA} and the shared region at {@link #SHARED_GPA}; the
 * device's space holds only its own mapping of the shared region, at the same DMA base.
 *
 * <p>Shared region: [coherent area][data area]. In DIRECT mode data buffers are blocks of the data
 * area; in BOUNCE mode the data area holds bounce slots and data buffers are blocks of private RAM.
 */
final class TestBed implements AutoCloseable {
    static final long PRIVATE_GPA = 0x4000_0000L;
    static final long SHARED_GPA = 0x1_0000_0000L;

    final SharedMemory driverMapping;
    final SharedMemory deviceMapping;
    final PrivateMemory privateMemory;
    final GuestAddressSpace driverSpace = new GuestAddressSpace("driver");
    final GuestAddressSpace deviceSpace = new GuestAddressSpace("device");
    final TestDmaOps dma;
    private final long blockBase;
    private final int blockBytes;
    private final BitSet freeBlocks;

    TestBed(TestDmaOps.Mode mode, long coherentBytes, int blockCount, int blockBytes) {
        long dataBytes = round((long) blockCount * blockBytes);
        coherentBytes = round(coherentBytes);
        long sharedBytes = coherentBytes + dataBytes;
        driverMapping = SharedMemory.create("vq-test", sharedBytes);
        deviceMapping = SharedMemory.map("vq-test-device", driverMapping.fd(), sharedBytes, false);
        privateMemory = new PrivateMemory("vq-test-private", mode == TestDmaOps.Mode.BOUNCE ? dataBytes : 4096);
        driverSpace.add(privateMemory.region(PRIVATE_GPA));
        driverSpace.add(driverMapping.region(SHARED_GPA));
        deviceSpace.add(deviceMapping.region(SHARED_GPA));
        long dataGpa = SHARED_GPA + coherentBytes;
        dma = new TestDmaOps(driverSpace, mode, SHARED_GPA, coherentBytes, dataGpa, blockCount, blockBytes);
        this.blockBase = mode == TestDmaOps.Mode.BOUNCE ? PRIVATE_GPA : dataGpa;
        this.blockBytes = blockBytes;
        this.freeBlocks = new BitSet(blockCount);
        freeBlocks.set(0, blockCount);
    }

    static TestBed direct() {
        return new TestBed(TestDmaOps.Mode.DIRECT, 1 << 20, 256, 4096);
    }

    private static long round(long bytes) {
        return Math.max(4096, (bytes + 4095) & -4096L);
    }

    /** A data buffer of up to {@code blockBytes} in driver memory. */
    long allocBuffer() {
        int block = freeBlocks.nextSetBit(0);
        if (block < 0) {
            throw new IllegalStateException("test buffers exhausted");
        }
        freeBlocks.clear(block);
        return blockBase + (long) block * blockBytes;
    }

    void freeBuffer(long gpa) {
        int block = (int) ((gpa - blockBase) / blockBytes);
        if (freeBlocks.get(block)) {
            throw new IllegalStateException("double free of test buffer " + block);
        }
        freeBlocks.set(block);
    }

    int blockBytes() {
        return blockBytes;
    }

    /** The driver's view of its own memory. */
    MemorySegment driverView(long gpa, long lengthBytes) {
        return driverSpace.translate(gpa, lengthBytes);
    }

    /** The device's view of a DMA address. */
    MemorySegment deviceView(long dmaAddr, long lengthBytes) {
        return deviceSpace.translate(dmaAddr, lengthBytes);
    }

    /** A copy of every byte of the shared region, for "nothing was modified" checks. */
    byte[] snapshotShared() {
        return deviceMapping.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
    }

    VirtqueueDevice device(VirtqueueDriver<?> driver, long features) {
        return new VirtqueueDevice("test-device", deviceSpace, driver.size(), driver.descAddr(), driver.availAddr(),
                driver.usedAddr(), features);
    }

    @Override
    public void close() {
        deviceMapping.close();
        driverMapping.close();
        privateMemory.close();
    }
}
