package dev.airlock.bench;

import dev.airlock.dma.BounceDmaOps;
import dev.airlock.dma.DirectDmaOps;
import dev.airlock.dma.DmaOps;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;
import dev.airlock.memory.SharedMemory;
import dev.airlock.swiotlb.SwiotlbPool;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDevice;
import dev.airlock.virtio.VirtqueueDriver;

import java.lang.foreign.MemorySegment;

/**
 * One virtqueue over real memory for the virtqueue benchmarks, laid out as in production: a memfd
 * (the shared region) mapped twice, once for the driver and once for the device at another host
 * address, plus the driver's private RAM. The driver's space holds both; the device's space holds
 * only its own mapping of the shared region, at the same DMA base.
 *
 * <pre>
 *   shared region (1 MiB memfd):  [ swiotlb pool, 512 KiB: rings, bounce slots ][ data buffers ]
 *   private RAM (64 KiB):         [ data buffers for the bounce variant ]
 * </pre>
 *
 * <p>Direct: the request's buffers lie in the shared region and {@link DirectDmaOps} maps them to
 * themselves. Bounce: they lie in private RAM and {@link BounceDmaOps} copies them through pool
 * slots. The rings come from the pool in both cases. Features: VERSION_1 and EVENT_IDX (no
 * INDIRECT_DESC, so a request of one out and one in buffer takes two ring descriptors).
 */
final class QueueBed implements AutoCloseable {
    static final long PRIVATE_GPA = 0x4000_0000L;
    static final long SHARED_GPA = 0x1_0000_0000L;
    static final int QUEUE_SIZE = 256;
    static final long FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX);
    private static final long SHARED_BYTES = 1 << 20;
    private static final long POOL_BYTES = SHARED_BYTES / 2;
    private static final long PRIVATE_BYTES = 64 << 10;

    final SharedMemory driverMapping;
    final SharedMemory deviceMapping;
    final PrivateMemory privateMemory;
    final GuestAddressSpace driverSpace = new GuestAddressSpace("bench-driver");
    final GuestAddressSpace deviceSpace = new GuestAddressSpace("bench-device");
    final DmaOps dma;
    final VirtqueueDriver<Integer> driver;
    final VirtqueueDevice device;
    private final long dataGpa;

    /**
     * Builds the queue.
     *
     * @param bounce whether request buffers live in private RAM and bounce through the pool
     */
    QueueBed(boolean bounce) {
        driverMapping = SharedMemory.create("bench-shared", SHARED_BYTES);
        deviceMapping = SharedMemory.map("bench-shared-device", driverMapping.fd(), SHARED_BYTES, false);
        privateMemory = new PrivateMemory("bench-private", PRIVATE_BYTES);
        driverSpace.add(privateMemory.region(PRIVATE_GPA));
        driverSpace.add(driverMapping.region(SHARED_GPA));
        deviceSpace.add(deviceMapping.region(SHARED_GPA));
        SwiotlbPool pool = SwiotlbPool.create("bench-pool", driverMapping.segment().asSlice(0, POOL_BYTES), SHARED_GPA, driverSpace);
        dma = bounce ? new BounceDmaOps(pool) : new DirectDmaOps(driverSpace, pool);
        dataGpa = bounce ? PRIVATE_GPA : SHARED_GPA + POOL_BYTES;
        driver = new VirtqueueDriver<>("bench", dma, QUEUE_SIZE, FEATURES);
        device = new VirtqueueDevice("bench", deviceSpace, QUEUE_SIZE, driver.descAddr(), driver.availAddr(),
                driver.usedAddr(), FEATURES);
    }

    /**
     * The driver's address of data buffer {@code n}: 4 KiB apart, in shared memory (direct) or
     * private RAM (bounce).
     *
     * @param n 0 to 15
     * @return its guest-physical address
     */
    long bufferGpa(int n) {
        return dataGpa + n * 4096L;
    }

    /** The driver's view of data buffer {@code n}. */
    MemorySegment buffer(int n, long lengthBytes) {
        return driverSpace.translate(bufferGpa(n), lengthBytes);
    }

    /**
     * The request every benchmark sends: one 64-byte device-readable buffer (0) and one 64-byte
     * device-writable buffer (1).
     *
     * @return a scatter-gather list to reuse for every add
     */
    ScatterGather request() {
        return new ScatterGather(2).out(bufferGpa(0), 64).in(bufferGpa(1), 64);
    }

    @Override
    public void close() {
        driver.close();
        deviceMapping.close();
        driverMapping.close();
        privateMemory.close();
    }
}
