package dev.airlock.dma;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.MemoryRegion;
import dev.airlock.memory.RegionKind;
import dev.airlock.memory.UnmappedAddressException;
import dev.airlock.swiotlb.DmaDirection;
import dev.airlock.swiotlb.SwiotlbPool;

import java.util.Objects;

/**
 * DMA operations for buffers that already lie in memory shared with the device (Linux's
 * dma-direct): the DMA address of a buffer is its guest-physical address, and nothing is copied.
 * {@link #mapSingle} checks that the whole buffer lies in one {@link RegionKind#SHARED} region of
 * the driver's address space and rejects anything else, private RAM above all.
 *
 * <p>Mappings are not recorded, so {@link #unmapSingle} and the syncs can only check that their
 * range is shared memory; the device reads and writes the buffer in place.
 *
 * <p>Coherent buffers come from a swiotlb pool in the same address space (its slots are shared
 * memory, and its DMA addresses are the driver's guest-physical addresses, as here).
 */
public final class DirectDmaOps implements DmaOps {
    private final GuestAddressSpace driverSpace;
    private final SwiotlbPool coherentPool;

    /**
     * Creates direct operations.
     *
     * @param driverSpace  the driver's address space
     * @param coherentPool the pool that coherent buffers come from; its address space must be
     *                     {@code driverSpace}
     * @throws IllegalArgumentException if the pool belongs to another address space
     */
    public DirectDmaOps(GuestAddressSpace driverSpace, SwiotlbPool coherentPool) {
        this.driverSpace = Objects.requireNonNull(driverSpace, "driverSpace");
        this.coherentPool = Objects.requireNonNull(coherentPool, "coherentPool");
        if (coherentPool.driverSpace() != driverSpace) {
            throw new IllegalArgumentException("pool " + coherentPool + " belongs to address space '"
                    + coherentPool.driverSpace().name() + "', not '" + driverSpace.name() + "'");
        }
    }

    /**
     * {@inheritDoc}
     *
     * @return {@code gpa} itself
     * @throws DmaMappingException      if the range does not lie in one shared region
     * @throws IllegalArgumentException if {@code lengthBytes} is less than 1
     */
    @Override
    public long mapSingle(long gpa, long lengthBytes, DmaDirection direction) {
        Objects.requireNonNull(direction, "direction");
        if (lengthBytes < 1) {
            throw new IllegalArgumentException("cannot map " + lengthBytes + " bytes at 0x" + Long.toHexString(gpa));
        }
        String problem = sharedProblem(gpa, lengthBytes);
        if (problem != null) {
            throw new DmaMappingException("direct DMA cannot map " + problem);
        }
        return gpa;
    }

    /**
     * {@inheritDoc} Nothing to copy: checks that the range is shared memory.
     *
     * @throws IllegalArgumentException if the range does not lie in one shared region
     */
    @Override
    public void unmapSingle(long dmaAddr, long lengthBytes, DmaDirection direction) {
        check("unmap", dmaAddr, lengthBytes, direction);
    }

    /**
     * {@inheritDoc} Nothing to copy: checks that the range is shared memory.
     *
     * @throws IllegalArgumentException if the range does not lie in one shared region
     */
    @Override
    public void syncForCpu(long dmaAddr, long lengthBytes, DmaDirection direction) {
        check("syncForCpu", dmaAddr, lengthBytes, direction);
    }

    /**
     * {@inheritDoc} Nothing to copy: checks that the range is shared memory.
     *
     * @throws IllegalArgumentException if the range does not lie in one shared region
     */
    @Override
    public void syncForDevice(long dmaAddr, long lengthBytes, DmaDirection direction) {
        check("syncForDevice", dmaAddr, lengthBytes, direction);
    }

    @Override
    public CoherentBuffer allocCoherent(long sizeBytes, long alignment) {
        return BounceDmaOps.allocCoherent(coherentPool, sizeBytes, alignment);
    }

    /**
     * {@inheritDoc}
     *
     * @throws IllegalArgumentException if the buffer is not a live allocation of the coherent pool
     */
    @Override
    public void freeCoherent(CoherentBuffer buffer) {
        BounceDmaOps.freeCoherent(coherentPool, buffer);
    }

    @Override
    public String toString() {
        return "DirectDmaOps(" + driverSpace.name() + ", coherent from " + coherentPool + ")";
    }

    private void check(String op, long dmaAddr, long lengthBytes, DmaDirection direction) {
        Objects.requireNonNull(direction, "direction");
        if (lengthBytes < 0) {
            throw new IllegalArgumentException(op + " of a negative length " + lengthBytes + " at 0x" + Long.toHexString(dmaAddr));
        }
        String problem = sharedProblem(dmaAddr, lengthBytes);
        if (problem != null) {
            throw new IllegalArgumentException("direct DMA " + op + " of " + problem);
        }
    }

    /** Why {@code [gpa, gpa + lengthBytes)} is not shared memory, or null when it is (no allocation then). */
    private String sharedProblem(long gpa, long lengthBytes) {
        MemoryRegion region;
        try {
            region = driverSpace.regionOf(gpa, lengthBytes);
        } catch (UnmappedAddressException e) {
            return range(gpa, lengthBytes) + ": " + e.getMessage();
        }
        if (region.kind() != RegionKind.SHARED) {
            return range(gpa, lengthBytes) + ": it lies in " + region
                    + ", private memory that the device cannot reach (use bounce DMA ops)";
        }
        return null;
    }

    private static String range(long gpa, long lengthBytes) {
        return "[0x" + Long.toHexString(gpa) + ", +" + lengthBytes + ")";
    }
}
