package dev.airlock.stress;

import dev.airlock.dma.DirectDmaOps;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.MemoryRegion;
import dev.airlock.memory.RegionKind;
import dev.airlock.swiotlb.SwiotlbPool;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDevice;
import dev.airlock.virtio.VirtqueueDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The real {@link VirtqueueDriver} and {@link VirtqueueDevice} of one small queue over real native
 * memory, built cheaply enough to make one per jcstress state.
 *
 * <p><b>Memory.</b> One 8 KiB native segment from {@link Arena#ofAuto()} (freed when the state is
 * collected) stands for the shared region. It is registered as a {@link RegionKind#SHARED} region
 * at {@link #SHARED_GPA} in the driver's address space and again, at the same address, in the
 * device's space (DMA addresses are the driver's guest-physical addresses, as with
 * {@link DirectDmaOps}). Both sides therefore reach the same physical pages through one virtual
 * mapping rather than two mappings of a memfd: that does not change what is tested, because cache
 * coherence and the ordering rules the fences rely on are properties of the physical location, not
 * of the virtual address through which it is reached, and the JIT must already treat any two
 * native accesses as possibly aliased. A {@code SharedMemory} (memfd plus two {@code mmap}s and
 * their {@code munmap}s) per state would cost several system calls for each of the millions of
 * states jcstress creates.
 *
 * <pre>
 *   SHARED_GPA                                   + 6 KiB            + 8 KiB
 *   | swiotlb pool: 3 slots of 2 KiB (rings)      | data buffers     |
 *   | desc table | avail ring | used ring         | A (0) | B (256)  |
 * </pre>
 *
 * <p><b>DMA.</b> The real {@link DirectDmaOps}: data buffers lie in the shared region and map to
 * themselves; the rings come from a real {@link SwiotlbPool} over the first 6 KiB, as
 * {@code allocCoherent} does in production.
 */
final class QueuePair {
    /** The driver's guest-physical address of the shared region. */
    static final long SHARED_GPA = 0x1_0000_0000L;
    /** Descriptors in the queue. */
    static final int QUEUE_SIZE = 4;
    /** Length of each data buffer: two cache lines, so a torn publication could show half old bytes. */
    static final int BUFFER_BYTES = 128;
    /** Offset of the data area in the region, after the ring pool. */
    private static final long DATA_OFFSET = 3L * SwiotlbPool.IO_TLB_SIZE;
    private static final long REGION_BYTES = DATA_OFFSET + SwiotlbPool.IO_TLB_SIZE;
    /** Buffers A and B are on different cache lines (and different adjacent-line prefetch pairs). */
    private static final long BUFFER_STRIDE = 256;

    /** Features of a queue with event-index notification suppression. */
    static final long EVENT_IDX = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX);
    /** Features of a queue with flag-based notification suppression. */
    static final long FLAGS_ONLY = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1);

    final VirtqueueDriver<Integer> driver;
    final VirtqueueDevice device;
    /** Reused by the driver for each request. */
    final ScatterGather sg = new ScatterGather(1);
    private final MemorySegment region;

    QueuePair(long features) {
        region = Arena.ofAuto().allocate(REGION_BYTES, 64);
        GuestAddressSpace driverSpace = new GuestAddressSpace("driver");
        driverSpace.add(new MemoryRegion("shared", RegionKind.SHARED, SHARED_GPA, region));
        GuestAddressSpace deviceSpace = new GuestAddressSpace("device");
        deviceSpace.add(new MemoryRegion("shared", RegionKind.SHARED, SHARED_GPA, region));
        SwiotlbPool pool = new SwiotlbPool("rings", region.asSlice(0, DATA_OFFSET), SHARED_GPA, driverSpace, 1, 0, 0);
        driver = new VirtqueueDriver<>("stress", new DirectDmaOps(driverSpace, pool), QUEUE_SIZE, features);
        device = new VirtqueueDevice("stress", deviceSpace, QUEUE_SIZE, driver.descAddr(), driver.availAddr(),
                driver.usedAddr(), features);
    }

    /**
     * The driver's address of data buffer {@code n} (0 = A, 1 = B).
     *
     * @param n which buffer
     * @return its guest-physical address
     */
    static long bufferGpa(int n) {
        return SHARED_GPA + DATA_OFFSET + n * BUFFER_STRIDE;
    }

    /** The CPU's view of data buffer {@code n}. */
    MemorySegment buffer(int n) {
        return region.asSlice(DATA_OFFSET + n * BUFFER_STRIDE, BUFFER_BYTES);
    }

    /** Offers buffer {@code n} as the one device-readable buffer of a request; fails the state if refused. */
    void addOut(int n, int token) {
        if (!driver.add(sg.clear().out(bufferGpa(n), BUFFER_BYTES), token)) {
            throw new IllegalStateException("set-up add refused: " + driver);
        }
    }

    /** Offers buffer {@code n} as the one device-writable buffer of a request; fails the state if refused. */
    void addIn(int n, int token) {
        if (!driver.add(sg.clear().in(bufferGpa(n), BUFFER_BYTES), token)) {
            throw new IllegalStateException("set-up add refused: " + driver);
        }
    }

    /** Pops a chain during set-up, where one must be there. */
    DescriptorChain popExpected() {
        DescriptorChain chain = device.pop();
        if (chain == null) {
            throw new IllegalStateException("set-up pop found nothing: " + device);
        }
        return chain;
    }

    /**
     * The byte pattern writers store: word {@code k} of a buffer holds {@code (k + 1) * 0x0101..01},
     * never zero, so a word still zero is one the reader saw before the write.
     *
     * @param k the word index
     * @return its value
     */
    static long pattern(int k) {
        return (k + 1) * 0x0101_0101_0101_0101L;
    }

    /** Writes the pattern into {@code segment} with plain stores, as an application fills a buffer. */
    static void fill(MemorySegment segment) {
        for (int k = 0; k < BUFFER_BYTES / Long.BYTES; k++) {
            segment.set(ValueLayout.JAVA_LONG, (long) k * Long.BYTES, pattern(k));
        }
    }

    /**
     * Compares {@code segment} with the pattern.
     *
     * @param segment {@link #BUFFER_BYTES} bytes
     * @return {@link Observation#OK} if every word matches, {@link Observation#STALE_DATA} if none
     *         does, else {@link Observation#PARTIAL_DATA}
     */
    static int check(MemorySegment segment) {
        int words = BUFFER_BYTES / Long.BYTES;
        int matching = 0;
        for (int k = 0; k < words; k++) {
            if (segment.get(ValueLayout.JAVA_LONG, (long) k * Long.BYTES) == pattern(k)) {
                matching++;
            }
        }
        return matching == words ? Observation.OK : matching == 0 ? Observation.STALE_DATA : Observation.PARTIAL_DATA;
    }
}
