package dev.airlock.dma;

import dev.airlock.memory.GuestMemoryException;
import dev.airlock.swiotlb.DmaDirection;
import dev.airlock.swiotlb.SwiotlbFullException;
import dev.airlock.swiotlb.SwiotlbPool;

import java.util.Objects;

/**
 * DMA operations that bounce every buffer through a swiotlb pool in the shared region: the seed's
 * "virtio bounce DMA ops", for a driver whose memory is private. {@link #mapSingle} copies the
 * buffer into pool slots and returns their address; {@link #unmapSingle} copies the device's bytes
 * back. Coherent buffers (the vrings) come from the same pool.
 *
 * <p>Every address these operations return lies inside the pool, which its constructor checked to
 * be the driver's view of a shared region, so no private address can reach a descriptor.
 *
 * <p>Costs: one copy per byte for data going to the device; for data coming from the device, one
 * copy back at unmap plus one copy in at map that keeps the slots from showing the device an
 * earlier mapping's bytes (see {@link SwiotlbPool}). No allocation per map or unmap.
 */
public final class BounceDmaOps implements DmaOps {
    private final SwiotlbPool pool;

    /**
     * Creates bounce operations over a pool.
     *
     * @param pool the pool every buffer goes through
     */
    public BounceDmaOps(SwiotlbPool pool) {
        this.pool = Objects.requireNonNull(pool, "pool");
    }

    /**
     * The pool behind these operations.
     *
     * @return the pool
     */
    public SwiotlbPool pool() {
        return pool;
    }

    /**
     * The largest buffer {@link #mapSingle} can map in one piece (Linux's
     * {@code swiotlb_max_mapping_size}); larger buffers must be split by the caller.
     *
     * @return bytes
     */
    public long maxMappingSize() {
        return pool.maxMappingSize();
    }

    /**
     * {@inheritDoc}
     *
     * @throws IllegalArgumentException if {@code lengthBytes} is less than 1
     */
    @Override
    public long mapSingle(long gpa, long lengthBytes, DmaDirection direction) {
        Objects.requireNonNull(direction, "direction");
        if (lengthBytes < 1) {
            throw new IllegalArgumentException("cannot map " + lengthBytes + " bytes at 0x" + Long.toHexString(gpa));
        }
        if (lengthBytes > pool.maxMappingSize()) {
            throw new DmaMappingException("cannot bounce " + lengthBytes + " bytes at 0x" + Long.toHexString(gpa)
                    + ": pool '" + pool.name() + "' maps at most " + pool.maxMappingSize() + " bytes at once; split the buffer");
        }
        long dmaAddr;
        try {
            dmaAddr = pool.mapSingle(gpa, lengthBytes, direction);
        } catch (SwiotlbFullException e) {
            throw new DmaMappingException("cannot bounce " + lengthBytes + " bytes at 0x" + Long.toHexString(gpa) + ": "
                    + e.getMessage(), e);
        } catch (GuestMemoryException e) {
            throw new DmaMappingException("cannot bounce a buffer outside the driver's memory: " + e.getMessage(), e);
        }
        if (!pool.contains(dmaAddr, lengthBytes)) {
            // Cannot happen: the pool hands out its own slots only. Checked because a private
            // address in a descriptor is the one failure this layer must never allow.
            throw new IllegalStateException("pool " + pool + " returned 0x" + Long.toHexString(dmaAddr) + " outside itself");
        }
        return dmaAddr;
    }

    /**
     * {@inheritDoc}
     *
     * @throws IllegalArgumentException if {@code dmaAddr} is not the start of a live mapping, or the
     *                                  length or direction differs from the mapping's
     */
    @Override
    public void unmapSingle(long dmaAddr, long lengthBytes, DmaDirection direction) {
        pool.unmapSingle(dmaAddr, lengthBytes, direction);
    }

    /**
     * {@inheritDoc}
     *
     * @throws IllegalArgumentException if the range is not inside a live mapping
     */
    @Override
    public void syncForCpu(long dmaAddr, long lengthBytes, DmaDirection direction) {
        pool.syncForCpu(dmaAddr, lengthBytes, direction);
    }

    /**
     * {@inheritDoc}
     *
     * @throws IllegalArgumentException if the range is not inside a live mapping
     */
    @Override
    public void syncForDevice(long dmaAddr, long lengthBytes, DmaDirection direction) {
        pool.syncForDevice(dmaAddr, lengthBytes, direction);
    }

    @Override
    public CoherentBuffer allocCoherent(long sizeBytes, long alignment) {
        return allocCoherent(pool, sizeBytes, alignment);
    }

    /**
     * {@inheritDoc}
     *
     * @throws IllegalArgumentException if the buffer is not a live allocation of this pool
     */
    @Override
    public void freeCoherent(CoherentBuffer buffer) {
        freeCoherent(pool, buffer);
    }

    @Override
    public String toString() {
        return "BounceDmaOps(" + pool + ")";
    }

    /** Coherent allocation from a pool, shared with {@link DirectDmaOps}. */
    static CoherentBuffer allocCoherent(SwiotlbPool pool, long sizeBytes, long alignment) {
        long dmaAddr;
        try {
            dmaAddr = pool.alloc(sizeBytes, alignment);
        } catch (SwiotlbFullException e) {
            throw new DmaMappingException("cannot allocate a coherent buffer of " + sizeBytes + " bytes: " + e.getMessage(), e);
        }
        return new CoherentBuffer(dmaAddr, pool.cpuSegment(dmaAddr, sizeBytes));
    }

    /** Frees a coherent buffer of a pool, checking that its segment is the pool's own view. */
    static void freeCoherent(SwiotlbPool pool, CoherentBuffer buffer) {
        Objects.requireNonNull(buffer, "buffer");
        if (!pool.contains(buffer.dmaAddr(), buffer.sizeBytes())
                || buffer.segment().address() != pool.cpuSegment(buffer.dmaAddr(), 0).address()) {
            throw new IllegalArgumentException("coherent buffer at 0x" + Long.toHexString(buffer.dmaAddr())
                    + " is not a view of pool " + pool);
        }
        pool.free(buffer.dmaAddr(), buffer.sizeBytes());
    }
}
