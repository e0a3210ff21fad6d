package dev.airlock.hypervisor;

import dev.airlock.memory.MemoryRegion;

/**
 * A shared region as one of its two VMs sees it: the region of that VM's address space that holds
 * it, and the peer it is shared with. The bytes are reached through
 * {@link VmContext#addressSpace()} (bounds-checked translation) or {@code region().segment()}.
 *
 * @param id     the region's id
 * @param peer   the other VM the region is granted to
 * @param region the {@link dev.airlock.memory.RegionKind#SHARED} region in this VM's address space,
 *               at this VM's own guest-physical base
 */
public record SharedRegionMapping(SharedRegionId id, VmId peer, MemoryRegion region) {
    /**
     * The region's name.
     *
     * @return the name given at creation
     */
    public String name() {
        return region.name();
    }

    /**
     * Where this VM sees the first byte.
     *
     * @return the guest-physical base in this VM's address space
     */
    public long gpaBase() {
        return region.gpaBase();
    }

    /**
     * The size of the region.
     *
     * @return its length in bytes
     */
    public long sizeBytes() {
        return region.sizeBytes();
    }
}
