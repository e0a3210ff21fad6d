package dev.airlock.memory;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * One region of a guest-physical address space: the bytes of {@code segment} seen at guest-physical
 * addresses {@code [gpaBase, gpaBase + segment.byteSize())}. The same bytes (one memfd) can appear
 * as regions of several address spaces at different bases: that is the non-linear mapping of a
 * shared region between two VMs.
 *
 * @param name    a name for messages, for example {@code "shared:vm1-vm2"}
 * @param kind    private RAM or a shared region
 * @param gpaBase the guest-physical address of the first byte
 * @param segment the memory, native and at least one byte long
 */
public record MemoryRegion(String name, RegionKind kind, long gpaBase, MemorySegment segment) {
    /**
     * Checks the region.
     *
     * @throws IllegalArgumentException when the segment is empty or the region wraps around 2^64
     */
    public MemoryRegion {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(segment, "segment");
        if (segment.byteSize() == 0) {
            throw new IllegalArgumentException("region '" + name + "' is empty");
        }
        if (Long.compareUnsigned(gpaBase, -segment.byteSize()) > 0) {
            throw new IllegalArgumentException("region '" + name + "' at 0x" + Long.toHexString(gpaBase)
                    + " of " + segment.byteSize() + " bytes wraps around 2^64");
        }
    }

    /**
     * The size of the region.
     *
     * @return its length in bytes
     */
    public long sizeBytes() {
        return segment.byteSize();
    }

    /**
     * The last guest-physical address of the region (inclusive, so that a region ending at 2^64 has
     * one).
     *
     * @return {@code gpaBase + sizeBytes - 1}
     */
    public long lastGpa() {
        return gpaBase + segment.byteSize() - 1;
    }

    /**
     * Whether {@code [gpa, gpa + lengthBytes)} lies inside this region. Overflow-safe; a zero-length
     * range is inside when {@code gpa} is inside or one past the end.
     *
     * @param gpa         first address
     * @param lengthBytes length, treated as unsigned
     * @return whether the whole range is inside
     */
    public boolean contains(long gpa, long lengthBytes) {
        long offset = gpa - gpaBase;
        // Unsigned: offset < 0 (gpa below the base) wraps to a huge value and fails both checks.
        return Long.compareUnsigned(offset, segment.byteSize()) <= 0
                && Long.compareUnsigned(lengthBytes, segment.byteSize() - offset) <= 0;
    }

    @Override
    public String toString() {
        return name + "(" + kind + " [0x" + Long.toHexString(gpaBase) + ", 0x" + Long.toHexString(lastGpa()) + "])";
    }
}
