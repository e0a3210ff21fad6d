package dev.airlock.memory;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;

/**
 * A guest-physical address space: non-overlapping {@link MemoryRegion}s, and translation of a guest
 * range to a bounds-checked {@link MemorySegment} slice.
 *
 * <p>Reads are lock-free: the regions are an immutable sorted array published through a volatile
 * field, replaced whole by {@link #add} and {@link #remove} (which are rare and synchronized). A
 * translation sees either the old or the new set of regions, never a half-updated one.
 *
 * <p>Every translation is overflow-safe and requires the whole range to fall inside one region; a
 * range that straddles two adjacent regions is rejected, because the two may be backed by unrelated
 * mappings.
 */
public final class GuestAddressSpace {
    private static final MemoryRegion[] NONE = new MemoryRegion[0];

    private final String name;
    private volatile MemoryRegion[] regions = NONE;

    /**
     * Creates an empty address space.
     *
     * @param name a name for messages, for example {@code "vm2"} or {@code "vm2:dma"}
     */
    public GuestAddressSpace(String name) {
        this.name = Objects.requireNonNull(name, "name");
    }

    /**
     * The name given at creation.
     *
     * @return the name
     */
    public String name() {
        return name;
    }

    /**
     * Adds a region.
     *
     * @param region the region
     * @return the region, for chaining
     * @throws IllegalArgumentException if it overlaps a region already present or reuses its name
     */
    public synchronized MemoryRegion add(MemoryRegion region) {
        Objects.requireNonNull(region, "region");
        for (MemoryRegion r : regions) {
            boolean disjoint = Long.compareUnsigned(region.lastGpa(), r.gpaBase()) < 0
                    || Long.compareUnsigned(r.lastGpa(), region.gpaBase()) < 0;
            if (!disjoint) {
                throw new IllegalArgumentException("region " + region + " overlaps " + r + " in address space '" + name + "'");
            }
            if (r.name().equals(region.name())) {
                throw new IllegalArgumentException("address space '" + name + "' already has a region named '" + r.name() + "'");
            }
        }
        MemoryRegion[] next = Arrays.copyOf(regions, regions.length + 1);
        next[regions.length] = region;
        Arrays.sort(next, Comparator.comparing(MemoryRegion::gpaBase, Long::compareUnsigned));
        regions = next;
        return region;
    }

    /**
     * Removes a region. Translations already handed out keep their slices; the owner of the memory
     * decides when it is unmapped.
     *
     * @param region the region to remove
     * @return whether it was present
     */
    public synchronized boolean remove(MemoryRegion region) {
        MemoryRegion[] current = regions;
        for (int i = 0; i < current.length; i++) {
            if (current[i].equals(region)) {
                MemoryRegion[] next = new MemoryRegion[current.length - 1];
                System.arraycopy(current, 0, next, 0, i);
                System.arraycopy(current, i + 1, next, i, current.length - i - 1);
                regions = next;
                return true;
            }
        }
        return false;
    }

    /**
     * The regions, sorted by base address.
     *
     * @return an immutable snapshot
     */
    public List<MemoryRegion> regions() {
        return List.of(regions);
    }

    /**
     * Finds the region that holds the whole range.
     *
     * @param gpa         first guest-physical address
     * @param lengthBytes length (unsigned)
     * @return the region
     * @throws UnmappedAddressException if no single region holds the whole range
     */
    public MemoryRegion regionOf(long gpa, long lengthBytes) {
        MemoryRegion[] current = regions;
        int lo = 0;
        int hi = current.length - 1;
        // Find the last region whose base is <= gpa (unsigned).
        MemoryRegion candidate = null;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            MemoryRegion r = current[mid];
            if (Long.compareUnsigned(r.gpaBase(), gpa) <= 0) {
                candidate = r;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        if (candidate == null || !candidate.contains(gpa, lengthBytes)) {
            throw new UnmappedAddressException(name, gpa, lengthBytes, candidate == null || !candidate.contains(gpa, 0)
                    ? "not mapped" : "runs past the end of region " + candidate);
        }
        return candidate;
    }

    /**
     * Translates a guest range to a slice of the backing memory.
     *
     * @param gpa         first guest-physical address
     * @param lengthBytes length in bytes (unsigned; must fit in one region)
     * @return a slice of exactly {@code lengthBytes} bytes
     * @throws UnmappedAddressException if no single region holds the whole range
     */
    public MemorySegment translate(long gpa, long lengthBytes) {
        MemoryRegion r = regionOf(gpa, lengthBytes);
        return r.segment().asSlice(gpa - r.gpaBase(), lengthBytes);
    }

    /**
     * Translates a guest range that must lie in a region of the given kind.
     *
     * @param gpa         first guest-physical address
     * @param lengthBytes length in bytes
     * @param kind        the kind the region must have
     * @return a slice of exactly {@code lengthBytes} bytes
     * @throws UnmappedAddressException if no single region of that kind holds the whole range
     */
    public MemorySegment translate(long gpa, long lengthBytes, RegionKind kind) {
        MemoryRegion r = regionOf(gpa, lengthBytes);
        if (r.kind() != kind) {
            throw new UnmappedAddressException(name, gpa, lengthBytes, "lies in " + r + ", not in a " + kind + " region");
        }
        return r.segment().asSlice(gpa - r.gpaBase(), lengthBytes);
    }

    /**
     * Whether the whole range lies inside one region.
     *
     * @param gpa         first guest-physical address
     * @param lengthBytes length (unsigned)
     * @return whether {@link #translate(long, long)} would succeed
     */
    public boolean contains(long gpa, long lengthBytes) {
        try {
            regionOf(gpa, lengthBytes);
            return true;
        } catch (UnmappedAddressException e) {
            return false;
        }
    }

    @Override
    public String toString() {
        return "GuestAddressSpace(" + name + ", " + Arrays.toString(regions) + ")";
    }
}
