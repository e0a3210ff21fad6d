package dev.airlock.devices.blk;

import dev.airlock.dma.BounceDmaOps;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;
import dev.airlock.memory.SharedMemory;
import dev.airlock.swiotlb.SwiotlbPool;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDevice;
import dev.airlock.virtio.VirtqueueDriver;

import java.lang.foreign.MemorySegment;

/**
 * Real memory and a real split virtqueue (driver side bouncing private RAM through a pool in a
 * memfd region, device side over its own mapping) for turning hand-made requests into
 * {@link DescriptorChain}s the way a device receives them.
 */
final class ChainBed implements AutoCloseable {
    static final long RAM_GPA = 0x10_0000L;
    static final long SHARED_GPA = 0x1_0000_0000L;
    static final long RAM_BYTES = 1 << 20;
    static final long SHARED_BYTES = 2 << 20;
    static final long FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_INDIRECT_DESC);

    final PrivateMemory ram = new PrivateMemory("blk-test:ram", RAM_BYTES);
    final SharedMemory shared = SharedMemory.create("blk-test:shared", SHARED_BYTES);
    final SharedMemory deviceMapping = SharedMemory.map("blk-test:device", shared.fd(), SHARED_BYTES, false);
    final GuestAddressSpace driverSpace = new GuestAddressSpace("driver");
    final GuestAddressSpace deviceSpace = new GuestAddressSpace("device");
    final VirtqueueDriver<Integer> driver;
    final VirtqueueDevice device;
    private final ScatterGather sg = new ScatterGather(4);
    private long nextRam;
    private int token;

    ChainBed() {
        driverSpace.add(ram.region(RAM_GPA));
        driverSpace.add(shared.region(SHARED_GPA));
        deviceSpace.add(deviceMapping.region(SHARED_GPA));
        SwiotlbPool pool = SwiotlbPool.create("blk-test", shared.segment(), SHARED_GPA, driverSpace);
        driver = new VirtqueueDriver<>("blk-test.q0", new BounceDmaOps(pool), 64, FEATURES);
        device = new VirtqueueDevice("blk-test.q0", deviceSpace, 64, driver.descAddr(), driver.availAddr(), driver.usedAddr(), FEATURES);
    }

    /** A buffer of private RAM (bump-allocated), with its gpa. */
    long alloc(long lengthBytes) {
        long gpa = RAM_GPA + nextRam;
        nextRam += (lengthBytes + 63) & -64L;
        if (nextRam > RAM_BYTES) {
            throw new IllegalStateException("test RAM exhausted");
        }
        return gpa;
    }

    /** Hands the chain back (used, length 0) and reaps it, so its buffers and RAM may be reused. */
    void complete(DescriptorChain chain) {
        device.pushUsed(chain, 0);
        driver.reap((t, len) -> { }, Integer.MAX_VALUE);
        nextRam = 0;
    }

    MemorySegment ram(long gpa, long lengthBytes) {
        return driverSpace.translate(gpa, lengthBytes);
    }

    /** A 16-byte header in RAM. */
    long header(int type, long sector) {
        long gpa = alloc(BlkRequestLayout.HEADER_LENGTH);
        BlkRequestLayout.writeHeader(ram(gpa, 16), type, sector);
        return gpa;
    }

    /** Segments in RAM: triples of sector, numSectors, flags. */
    long segments(long... triples) {
        int n = triples.length / 3;
        long gpa = alloc((long) n * BlkRequestLayout.SEGMENT_LENGTH);
        for (int i = 0; i < n; i++) {
            BlkRequestLayout.writeSegment(ram(gpa + 16L * i, 16), triples[3 * i], (int) triples[3 * i + 1], (int) triples[3 * i + 2]);
        }
        return gpa;
    }

    /** Starts a chain description: add buffers with {@link #out} and {@link #in}, then {@link #pop}. */
    ChainBed chain() {
        sg.clear();
        return this;
    }

    ChainBed out(long gpa, long lengthBytes) {
        sg.out(gpa, lengthBytes);
        return this;
    }

    ChainBed out(long lengthBytes) {
        return out(alloc(lengthBytes), lengthBytes);
    }

    ChainBed in(long lengthBytes) {
        sg.in(alloc(lengthBytes), lengthBytes);
        return this;
    }

    /** Makes the chain available and takes it on the device side. */
    DescriptorChain pop() {
        if (!driver.add(sg, token++)) {
            throw new IllegalStateException("queue full");
        }
        DescriptorChain chain = device.pop();
        if (chain == null) {
            throw new IllegalStateException("device saw nothing");
        }
        return chain;
    }

    @Override
    public void close() {
        deviceMapping.close();
        shared.close();
        ram.close();
    }
}
