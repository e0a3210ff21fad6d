package dev.airlock.vhostuser;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.MemoryRegion;
import dev.airlock.memory.RegionKind;
import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.NativeCallException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The front-end's memory as this back-end maps it: each region's fd mapped {@code MAP_SHARED} at
 * its {@code mmap_offset}, entered into a guest-physical {@link GuestAddressSpace} (descriptors carry
 * guest-physical addresses) and kept with its front-end user address (ring addresses of
 * SET_VRING_ADDR are user addresses). Regions may not overlap in either space, and must lie inside
 * their file. Used by the connection thread; the address space may be read from any thread.
 */
final class GuestMemoryTable implements AutoCloseable {
    /** The most regions held at once (GET_MAX_MEM_SLOTS). */
    static final int MAX_REGIONS = 32;
    private static final long PAGE_SIZE = 4096;

    /** One mapped region. */
    record Mapped(long gpa, long sizeBytes, long uva, Arena arena, MemoryRegion region) {
        boolean sameAs(long otherGpa, long otherSize, long otherUva) {
            return gpa == otherGpa && sizeBytes == otherSize && uva == otherUva;
        }
    }

    private final String name;
    private final GuestAddressSpace space;
    private final List<Mapped> regions = new ArrayList<>();
    private int generation;

    GuestMemoryTable(String name) {
        this.name = name;
        this.space = new GuestAddressSpace(name);
    }

    GuestAddressSpace space() {
        return space;
    }

    int regionCount() {
        return regions.size();
    }

    /**
     * Checks a region against the table and maps it; the fd is closed in every case (the mapping
     * keeps the memory).
     */
    void add(String field, long gpa, long sizeBytes, long uva, long mmapOffset, int fd) {
        try {
            check(field, gpa, sizeBytes, uva, mmapOffset);
            long fileSize;
            try {
                fileSize = Linux.fileSize(fd);
            } catch (NativeCallException e) {
                throw new VhostUserProtocolException(field + ".fd", fd, "not a mappable file: " + e.getMessage());
            }
            if (Long.compareUnsigned(mmapOffset + sizeBytes, fileSize) > 0) {
                throw new VhostUserProtocolException(field + ".memory_size", sizeBytes, "region at mmap_offset " + mmapOffset
                        + " runs past the end of its file of " + fileSize + " bytes");
            }
            long alignedOffset = mmapOffset & -PAGE_SIZE;
            long lead = mmapOffset - alignedOffset;
            Arena arena = Arena.ofShared();
            MemorySegment mapping;
            try {
                mapping = Linux.mmap(sizeBytes + lead, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED, fd, alignedOffset, arena);
            } catch (NativeCallException e) {
                arena.close();
                throw new VhostUserProtocolException(field + ".mmap_offset", mmapOffset, "cannot be mapped: " + e.getMessage());
            }
            MemoryRegion region = new MemoryRegion(name + ".mem" + generation++, RegionKind.SHARED, gpa,
                    mapping.asSlice(lead, sizeBytes));
            space.add(region);
            regions.add(new Mapped(gpa, sizeBytes, uva, arena, region));
        } finally {
            Linux.close(fd);
        }
    }

    private void check(String field, long gpa, long sizeBytes, long uva, long mmapOffset) {
        if (regions.size() == MAX_REGIONS) {
            throw new VhostUserProtocolException(field, regions.size(), "more than " + MAX_REGIONS + " memory regions");
        }
        if (sizeBytes == 0) {
            throw new VhostUserProtocolException(field + ".memory_size", 0, "empty region");
        }
        if (Long.compareUnsigned(gpa, -sizeBytes) > 0) {
            throw new VhostUserProtocolException(field + ".guest_phys_addr", gpa, "region of " + sizeBytes + " bytes wraps around 2^64");
        }
        if (Long.compareUnsigned(uva, -sizeBytes) > 0) {
            throw new VhostUserProtocolException(field + ".userspace_addr", uva, "region of " + sizeBytes + " bytes wraps around 2^64");
        }
        if (Long.compareUnsigned(mmapOffset, -sizeBytes) > 0 || mmapOffset < 0) {
            throw new VhostUserProtocolException(field + ".mmap_offset", mmapOffset, "offset plus size overflows");
        }
        for (Mapped m : regions) {
            if (overlaps(gpa, sizeBytes, m.gpa(), m.sizeBytes())) {
                throw new VhostUserProtocolException(field + ".guest_phys_addr", gpa, "overlaps region " + m.region());
            }
            if (overlaps(uva, sizeBytes, m.uva(), m.sizeBytes())) {
                throw new VhostUserProtocolException(field + ".userspace_addr", uva, "overlaps the user range of " + m.region());
            }
        }
    }

    /** Whether [a, a + aSize) and [b, b + bSize) intersect; unsigned, sizes non-zero, neither wraps. */
    private static boolean overlaps(long a, long aSize, long b, long bSize) {
        return Long.compareUnsigned(a, b + bSize - 1) <= 0 && Long.compareUnsigned(b, a + aSize - 1) <= 0;
    }

    /** Removes and unmaps the region with exactly these bounds (REM_MEM_REG). */
    void remove(String field, long gpa, long sizeBytes, long uva) {
        for (Mapped m : regions) {
            if (m.sameAs(gpa, sizeBytes, uva)) {
                regions.remove(m);
                space.remove(m.region());
                m.arena().close();
                return;
            }
        }
        throw new VhostUserProtocolException(field + ".guest_phys_addr", gpa, "no region of " + sizeBytes
                + " bytes at user address 0x" + Long.toHexString(uva) + " to remove");
    }

    /**
     * Translates a front-end user address range (a ring) to the guest-physical address of its first
     * byte; the whole range must lie in one region.
     */
    long uvaToGpa(String field, long uva, long lengthBytes) {
        for (Mapped m : regions) {
            long offset = uva - m.uva();
            if (Long.compareUnsigned(offset, m.sizeBytes()) < 0 && Long.compareUnsigned(lengthBytes, m.sizeBytes() - offset) <= 0) {
                return m.gpa() + offset;
            }
        }
        throw new VhostUserProtocolException(field, uva, "ring of " + lengthBytes + " bytes is not inside one memory region");
    }

    /** Unmaps everything. */
    @Override
    public void close() {
        for (Mapped m : regions) {
            space.remove(m.region());
            m.arena().close();
        }
        regions.clear();
    }
}
