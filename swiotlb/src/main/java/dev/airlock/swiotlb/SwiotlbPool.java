package dev.airlock.swiotlb;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.GuestMemoryException;
import dev.airlock.memory.MemoryRegion;
import dev.airlock.memory.RegionKind;

import java.lang.foreign.MemorySegment;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * A bounce pool in a shared region, in the manner of Linux's swiotlb: the driver copies each buffer
 * of its private memory into 2 KiB slots of the pool, which the device can reach, and copies the
 * device's answer back.
 *
 * <h2>Addresses</h2>
 * {@code origAddr} is a guest-physical address in the driver's {@link GuestAddressSpace} (usually
 * private RAM). A DMA address is the driver's guest-physical address of a byte of the pool:
 * {@code dmaBase} is where the pool's first byte sits in the driver's view of the shared region. The
 * device maps the same memory at its own base and translates DMA addresses itself (the non-linear
 * mapping); nothing here depends on the device's base.
 *
 * <h2>Slots, segments, areas</h2>
 * The pool is cut into {@value #IO_TLB_SIZE}-byte slots, grouped into segments of
 * {@value #IO_TLB_SEGSIZE} slots counted from the pool's first slot. A streaming mapping takes 1 to
 * 128 contiguous slots of one segment, so at most {@link #IO_TLB_SEGMENT_BYTES} bytes. Segments are
 * grouped into areas of whole segments, each with its own lock and search-start hint. A thread tries
 * the area its thread id picks first, and falls back to the others, first skipping areas whose lock
 * is held by another thread, then waiting for them. Within an area the search starts at the range
 * freed last (its cache lines are warm, and a map/unmap loop reuses the same slots) or else just
 * past the last allocation, and wraps around once. Locks are held for the bookkeeping only, never
 * while copying.
 *
 * <h2>Alignment</h2>
 * <ul>
 *   <li>{@code minAlignMask} (a device's {@code min_align_mask}, a mask of low bits such as
 *       {@code 0xfff}): the returned DMA address has the same bits under the mask as
 *       {@code origAddr}. Bits below the slot size come from an offset into the first slot, which
 *       can cost one more slot; higher bits come from choosing a slot whose DMA address has them.
 *       {@link #maxMappingSize()} says how large a mapping can then be.</li>
 *   <li>Allocation alignment: a power of two; the first slot's DMA address is a multiple of it (of
 *       the slot size if it is smaller). When it is 0 (unset) the pool follows Linux's historical
 *       rule: streaming mappings of at least {@value #PAGE_SIZE} bytes start on a page boundary
 *       unless {@code minAlignMask} is set, smaller ones on a slot boundary. The mask bits that the
 *       allocation alignment already fixes are carried by the offset, as Linux does.</li>
 * </ul>
 *
 * <h2>Copies</h2>
 * {@link #mapSingle} copies the original into the slots for <em>every</em> direction, also
 * {@link DmaDirection#FROM_DEVICE}: otherwise the slots would show the device the bytes of an
 * earlier mapping (an information leak), and a device that writes only part of the buffer would,
 * at unmap, overwrite the rest of the original with those stale bytes. Linux does the same since
 * 2022. The cost is one extra copy per byte for device-to-memory transfers: a FROM_DEVICE
 * map-and-unmap moves each byte twice, a TO_DEVICE one once. {@link #unmapSingle} copies back for
 * FROM_DEVICE and BIDIRECTIONAL only. The syncs copy a sub-range in the direction their name says
 * when the direction passed allows it, checked against the mapping's recorded size.
 *
 * <h2>Costs on the hot path</h2>
 * No allocation per map, sync or unmap. A map takes one area lock; an unmap without copy-back takes
 * one; an unmap with copy-back takes the lock twice (claim, then free after copying). Byte counters
 * are per area, updated under its lock; the used-slot count behind the high-water mark is one
 * atomic add per map and per unmap (as Linux's {@code total_used}).
 *
 * <h2>Coherent allocations</h2>
 * {@link #alloc} hands out zeroed slots for memory both sides use in place (the vrings). Up to a
 * segment it is found like a mapping; larger allocations take whole consecutive segments from a
 * segment start (they may span areas, and briefly take every area lock), so any size up to the pool
 * is possible when whole segments are free.
 *
 * <h2>Errors and thread-safety</h2>
 * No room: {@link SwiotlbFullException}, counted in {@link #stats()}. An {@code origAddr} range
 * outside the driver's memory: the address space's {@link GuestMemoryException}. Wrong use (an
 * address that is not a live mapping, a size or direction that differs from the mapping's, a sync
 * outside the mapping or in another direction than a one-way mapping's):
 * {@link IllegalArgumentException}, and the pool is unchanged. Every
 * operation is thread-safe, and every state change is checked under the area lock, so no sequence
 * of calls from any number of threads can hand a slot to two allocations or lose one; an unmap
 * claims its mapping before copying back, so a second unmap of the same address is rejected. The
 * pool cannot tell a driver's unmap of a mapping it does not own from a legitimate one.
 */
public final class SwiotlbPool {
    /** log2 of the slot size. */
    public static final int IO_TLB_SHIFT = 11;
    /** The slot size in bytes (2 KiB). */
    public static final int IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
    /** Slots per segment: the most one streaming mapping can take. */
    public static final int IO_TLB_SEGSIZE = 128;
    /** Bytes per segment (256 KiB): the largest streaming mapping without alignment offset. */
    public static final long IO_TLB_SEGMENT_BYTES = (long) IO_TLB_SIZE * IO_TLB_SEGSIZE;
    /** The page size behind the default alignment of page-sized mappings. */
    public static final long PAGE_SIZE = 4096;
    /** The largest allocation alignment, and one more than the largest {@code minAlignMask}. */
    public static final long MAX_ALIGNMENT = 1L << 30;
    /** The largest pool. */
    public static final long MAX_POOL_BYTES = 1L << 40;

    private static final long IO_TLB_MASK = IO_TLB_SIZE - 1;
    private static final DmaDirection[] DIRECTIONS = DmaDirection.values();

    private final String name;
    private final MemorySegment memory;
    private final long dmaBase;
    private final long sizeBytes;
    private final GuestAddressSpace driverSpace;
    private final long minAlignMask;
    private final long allocAlignment;
    private final int nslabs;
    private final SlotTable slots;
    private final Area[] areas;
    private final Area[] areaOfSegment;

    private final AtomicLong usedSlots = new AtomicLong();
    private final AtomicLong highWaterSlots = new AtomicLong();
    private final LongAdder failedMappings = new LongAdder();

    /**
     * Creates a pool over part of a shared region.
     *
     * @param name           a name for messages and statistics
     * @param memory         the driver's (CPU's) view of the pool: a slice of a shared region
     * @param dmaBase        the DMA address of the pool's first byte: the driver's guest-physical
     *                       address of {@code memory}, a multiple of {@value #IO_TLB_SIZE}
     * @param driverSpace    the driver's address space: it must map {@code [dmaBase, dmaBase + size)}
     *                       to {@code memory} in one {@link RegionKind#SHARED} region, and it
     *                       translates every {@code origAddr}
     * @param areaCount      how many areas (locks), from 1 to the number of segments
     * @param minAlignMask   low bits of {@code origAddr} to keep in the DMA address: 0 or
     *                       {@code 2^k - 1} below {@link #MAX_ALIGNMENT}
     * @param allocAlignment alignment of each streaming mapping's first slot: 0 for Linux's default
     *                       (see the class description) or a power of two up to {@link #MAX_ALIGNMENT}
     * @throws IllegalArgumentException if an argument breaks these rules; the size of {@code memory}
     *                                  must be a positive multiple of {@value #IO_TLB_SIZE} up to
     *                                  {@link #MAX_POOL_BYTES}
     */
    public SwiotlbPool(String name, MemorySegment memory, long dmaBase, GuestAddressSpace driverSpace, int areaCount,
                       long minAlignMask, long allocAlignment) {
        this.name = Objects.requireNonNull(name, "name");
        this.memory = Objects.requireNonNull(memory, "memory");
        this.driverSpace = Objects.requireNonNull(driverSpace, "driverSpace");
        this.dmaBase = dmaBase;
        this.sizeBytes = memory.byteSize();
        if (sizeBytes <= 0 || (sizeBytes & IO_TLB_MASK) != 0 || sizeBytes > MAX_POOL_BYTES) {
            throw new IllegalArgumentException("pool '" + name + "': size " + sizeBytes + " is not a positive multiple of "
                    + IO_TLB_SIZE + " up to " + MAX_POOL_BYTES);
        }
        if ((dmaBase & IO_TLB_MASK) != 0) {
            throw new IllegalArgumentException("pool '" + name + "': dmaBase 0x" + Long.toHexString(dmaBase)
                    + " is not a multiple of " + IO_TLB_SIZE);
        }
        checkSharedView(name, driverSpace, dmaBase, memory);
        if (minAlignMask < 0 || (minAlignMask & (minAlignMask + 1)) != 0 || minAlignMask >= MAX_ALIGNMENT) {
            throw new IllegalArgumentException("pool '" + name + "': minAlignMask 0x" + Long.toHexString(minAlignMask)
                    + " is not a mask of low bits below " + MAX_ALIGNMENT);
        }
        if (allocAlignment != 0 && (Long.bitCount(allocAlignment) != 1 || allocAlignment < 0 || allocAlignment > MAX_ALIGNMENT)) {
            throw new IllegalArgumentException("pool '" + name + "': allocation alignment " + allocAlignment
                    + " is neither 0 nor a power of two up to " + MAX_ALIGNMENT);
        }
        this.minAlignMask = minAlignMask;
        this.allocAlignment = allocAlignment;
        this.nslabs = (int) (sizeBytes >>> IO_TLB_SHIFT);
        int nsegments = (nslabs + IO_TLB_SEGSIZE - 1) / IO_TLB_SEGSIZE;
        if (areaCount < 1 || areaCount > nsegments) {
            throw new IllegalArgumentException("pool '" + name + "': " + areaCount + " areas for " + nsegments
                    + " segments; each area needs at least one segment");
        }
        this.slots = new SlotTable(nslabs, dmaBase);
        this.areas = new Area[areaCount];
        this.areaOfSegment = new Area[nsegments];
        for (int a = 0; a < areaCount; a++) {
            // Whole segments per area, sizes differing by at most one segment.
            int firstSegment = (int) ((long) a * nsegments / areaCount);
            int endSegment = (int) ((long) (a + 1) * nsegments / areaCount);
            areas[a] = new Area(a, firstSegment * IO_TLB_SEGSIZE, Math.min(endSegment * IO_TLB_SEGSIZE, nslabs));
            for (int s = firstSegment; s < endSegment; s++) {
                areaOfSegment[s] = areas[a];
            }
        }
    }

    /**
     * Creates a pool with the default options: one area per available processor (at most one per
     * segment), no {@code minAlignMask}, Linux's default allocation alignment.
     *
     * @param name        a name for messages and statistics
     * @param memory      the driver's view of the pool, a slice of a shared region
     * @param dmaBase     the DMA address of the pool's first byte
     * @param driverSpace the driver's address space
     * @return the pool
     * @throws IllegalArgumentException as {@link #SwiotlbPool} does
     */
    public static SwiotlbPool create(String name, MemorySegment memory, long dmaBase, GuestAddressSpace driverSpace) {
        long segments = Math.max(1, (memory.byteSize() + IO_TLB_SEGMENT_BYTES - 1) / IO_TLB_SEGMENT_BYTES);
        int areaCount = (int) Math.min(Runtime.getRuntime().availableProcessors(), segments);
        return new SwiotlbPool(name, memory, dmaBase, driverSpace, areaCount, 0, 0);
    }

    private static void checkSharedView(String name, GuestAddressSpace driverSpace, long dmaBase, MemorySegment memory) {
        // The pool must be the driver's own view of shared memory: then every DMA address it hands
        // out is a shared address, never a private one.
        MemoryRegion region;
        try {
            region = driverSpace.regionOf(dmaBase, memory.byteSize());
        } catch (GuestMemoryException e) {
            throw new IllegalArgumentException("pool '" + name + "' is not inside one region of the driver's space: "
                    + e.getMessage(), e);
        }
        if (region.kind() != RegionKind.SHARED) {
            throw new IllegalArgumentException("pool '" + name + "' lies in " + region + ", which is not a shared region");
        }
        if (!memory.isNative() || memory.address() != region.segment().address() + (dmaBase - region.gpaBase())) {
            throw new IllegalArgumentException("pool '" + name + "': memory is not the driver's view of 0x"
                    + Long.toHexString(dmaBase) + " in " + region);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Streaming mappings

    /**
     * Maps a buffer of the driver's memory: takes slots and copies the original into them (for
     * every direction; see the class description).
     *
     * @param origAddr  the buffer's guest-physical address in the driver's address space
     * @param sizeBytes its length, from 1 to {@link #maxMappingSize()}
     * @param direction which way the data flows
     * @return the DMA address of the buffer's copy, inside the pool
     * @throws SwiotlbFullException     if no suitable free range exists
     * @throws GuestMemoryException     if the buffer is not inside one region of the driver's space
     * @throws IllegalArgumentException if the size is out of range
     */
    public long mapSingle(long origAddr, long sizeBytes, DmaDirection direction) {
        Objects.requireNonNull(direction, "direction");
        if (sizeBytes < 1 || sizeBytes > IO_TLB_SEGMENT_BYTES) {
            throw new IllegalArgumentException("pool '" + name + "': cannot map " + sizeBytes + " bytes; a mapping holds 1 to "
                    + maxMappingSize());
        }
        MemoryRegion orig = driverSpace.regionOf(origAddr, sizeBytes);
        long allocMask = streamingAllocMask(sizeBytes);
        int offset = (int) (origAddr & minAlignMask & allocMask);
        long span = offset + sizeBytes;
        if (span > IO_TLB_SEGMENT_BYTES) {
            throw new IllegalArgumentException("pool '" + name + "': " + sizeBytes + " bytes at 0x" + Long.toHexString(origAddr)
                    + " need " + span + " bytes with the alignment offset; a mapping holds at most " + maxMappingSize());
        }
        int nslots = slotsFor(span);
        // Mask bits above the allocation alignment must match between the first slot and origAddr.
        long iotlbAlignMask = minAlignMask & ~allocMask;
        long origOffset = origAddr - orig.gpaBase();
        int h = allocate(nslots, allocMask | iotlbAlignMask, origAddr & iotlbAlignMask, sizeBytes, SlotTable.MAPPED,
                direction, origAddr, offset, orig.segment(), origOffset);
        long slotOffset = ((long) h << IO_TLB_SHIFT) + offset;
        try {
            MemorySegment.copy(orig.segment(), origOffset, memory, slotOffset, sizeBytes);
        } catch (RuntimeException e) {
            // The original's memory went away (its arena was closed); give the slots back.
            release(h, nslots);
            throw e;
        }
        return dmaBase + slotOffset;
    }

    /**
     * Ends a mapping: copies the slots back to the original for {@link DmaDirection#FROM_DEVICE}
     * and {@link DmaDirection#BIDIRECTIONAL}, then frees them.
     *
     * @param dmaAddr   the address {@link #mapSingle} returned
     * @param sizeBytes the size given to {@link #mapSingle}
     * @param direction the direction given to {@link #mapSingle}
     * @throws IllegalArgumentException if {@code dmaAddr} is not the start of a live mapping, or the
     *                                  size or direction differs from the mapping's
     */
    public void unmapSingle(long dmaAddr, long sizeBytes, DmaDirection direction) {
        Objects.requireNonNull(direction, "direction");
        int idx = slotOf(dmaAddr, "unmap");
        Area area = areaOfSlot(idx);
        int h;
        int nslots;
        MemorySegment origSegment;
        long origOffset;
        area.lock.lock();
        try {
            h = liveMapping(idx, dmaAddr, "unmap");
            if (dmaAddr != mappingStart(h)) {
                throw misuse("unmap", dmaAddr, "is inside the mapping at 0x" + Long.toHexString(mappingStart(h))
                        + ", not its start");
            }
            if (sizeBytes != slots.allocSize[h]) {
                throw misuse("unmap", dmaAddr, "was mapped with " + slots.allocSize[h] + " bytes, not " + sizeBytes);
            }
            if (direction.ordinal() != slots.direction[h]) {
                throw misuse("unmap", dmaAddr, "was mapped " + DIRECTIONS[slots.direction[h]] + ", not " + direction);
            }
            nslots = slots.slotCount[h];
            if (!direction.fromDevice()) {
                // Nothing to copy back: free the slots in this same critical section.
                releaseLocked(area, h, nslots);
                return;
            }
            // Claim the mapping, so that a concurrent second unmap or a sync of it is rejected,
            // and copy back without holding the lock.
            slots.state[h] = SlotTable.UNMAPPING;
            origSegment = slots.origSegment[h];
            origOffset = slots.origOffset[h];
            area.bytesFromDevice += sizeBytes;
        } finally {
            area.lock.unlock();
        }
        try {
            MemorySegment.copy(memory, dmaAddr - dmaBase, origSegment, origOffset, sizeBytes);
        } finally {
            release(h, nslots);
        }
    }

    /**
     * Copies part of a live mapping from the slots to the original, so the CPU sees what the device
     * wrote. Copies only for {@link DmaDirection#FROM_DEVICE} and {@link DmaDirection#BIDIRECTIONAL}.
     *
     * @param dmaAddr   an address inside a live mapping
     * @param sizeBytes how many bytes from there; the range must end inside the mapping (a
     *                  zero-length sync copies nothing and checks only that the address is in the pool)
     * @param direction the mapping's direction (any direction for a bidirectional mapping)
     * @throws IllegalArgumentException if the range is not inside a live mapping or the direction
     *                                  differs from the mapping's
     */
    public void syncForCpu(long dmaAddr, long sizeBytes, DmaDirection direction) {
        sync(dmaAddr, sizeBytes, direction, false);
    }

    /**
     * Copies part of a live mapping from the original to the slots, so the device sees what the CPU
     * wrote. Copies only for {@link DmaDirection#TO_DEVICE} and {@link DmaDirection#BIDIRECTIONAL}.
     *
     * @param dmaAddr   an address inside a live mapping
     * @param sizeBytes how many bytes from there; the range must end inside the mapping (a
     *                  zero-length sync copies nothing and checks only that the address is in the pool)
     * @param direction the mapping's direction (any direction for a bidirectional mapping)
     * @throws IllegalArgumentException if the range is not inside a live mapping or the direction
     *                                  differs from the mapping's
     */
    public void syncForDevice(long dmaAddr, long sizeBytes, DmaDirection direction) {
        sync(dmaAddr, sizeBytes, direction, true);
    }

    private void sync(long dmaAddr, long sizeBytes, DmaDirection direction, boolean forDevice) {
        Objects.requireNonNull(direction, "direction");
        String op = forDevice ? "syncForDevice" : "syncForCpu";
        if (sizeBytes < 0) {
            throw misuse(op, dmaAddr, "negative size " + sizeBytes);
        }
        if (sizeBytes == 0) {
            // Nothing to copy. A zero-length range at the end of a mapping may sit in another
            // mapping's slot or at the end of the pool, so it cannot name its mapping; checking that
            // it lies in the pool is all.
            if (!contains(dmaAddr, 0)) {
                throw misuse(op, dmaAddr, "is not inside the pool");
            }
            return;
        }
        int idx = slotOf(dmaAddr, op);
        Area area = areaOfSlot(idx);
        MemorySegment origSegment;
        long origOffset;
        area.lock.lock();
        try {
            int h = liveMapping(idx, dmaAddr, op);
            DmaDirection mapped = DIRECTIONS[slots.direction[h]];
            if (mapped != direction && mapped != DmaDirection.BIDIRECTIONAL) {
                throw misuse(op, dmaAddr, "lies in a mapping made " + mapped + ", not " + direction);
            }
            long start = mappingStart(h);
            long allocSize = slots.allocSize[h];
            long rel = dmaAddr - start;
            // Unsigned: an address before the mapping's first byte wraps to a huge offset.
            if (Long.compareUnsigned(rel, allocSize) > 0 || Long.compareUnsigned(sizeBytes, allocSize - rel) > 0) {
                throw misuse(op, dmaAddr, "+" + sizeBytes + " runs outside the mapping [0x" + Long.toHexString(start)
                        + ", +" + allocSize + ")");
            }
            origSegment = slots.origSegment[h];
            origOffset = slots.origOffset[h] + rel;
            if (forDevice && direction.toDevice()) {
                area.bytesToDevice += sizeBytes;
            } else if (!forDevice && direction.fromDevice()) {
                area.bytesFromDevice += sizeBytes;
            }
        } finally {
            area.lock.unlock();
        }
        if (forDevice && direction.toDevice()) {
            MemorySegment.copy(origSegment, origOffset, memory, dmaAddr - dmaBase, sizeBytes);
        } else if (!forDevice && direction.fromDevice()) {
            MemorySegment.copy(memory, dmaAddr - dmaBase, origSegment, origOffset, sizeBytes);
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Coherent allocations

    /**
     * Allocates zeroed slots that the driver and the device use in place (the vrings). The driver
     * reaches them through {@link #cpuSegment}.
     *
     * @param sizeBytes at least 1, at most the pool's size; above {@link #IO_TLB_SEGMENT_BYTES} the
     *                  allocation takes whole free segments
     * @param alignment the DMA address's alignment, a power of two up to {@link #MAX_ALIGNMENT}
     *                  (at least the slot size is always given)
     * @return the DMA address of the first byte
     * @throws SwiotlbFullException     if no suitable free range exists
     * @throws IllegalArgumentException if the size or alignment is out of range
     */
    public long alloc(long sizeBytes, long alignment) {
        if (sizeBytes < 1) {
            throw new IllegalArgumentException("pool '" + name + "': cannot allocate " + sizeBytes + " bytes");
        }
        if (alignment < 1 || Long.bitCount(alignment) != 1 || alignment > MAX_ALIGNMENT) {
            throw new IllegalArgumentException("pool '" + name + "': alignment " + alignment + " is not a power of two up to "
                    + MAX_ALIGNMENT);
        }
        long mask = Math.max(alignment, IO_TLB_SIZE) - 1;
        long needed = (sizeBytes >>> IO_TLB_SHIFT) + ((sizeBytes & IO_TLB_MASK) != 0 ? 1 : 0);
        int h = -1;
        if (needed <= IO_TLB_SEGSIZE) {
            h = allocate((int) needed, mask, 0, sizeBytes, SlotTable.COHERENT, DmaDirection.BIDIRECTIONAL, 0, 0, null, 0);
        } else if (needed <= nslabs) {
            h = allocateSegments((int) needed, mask, sizeBytes);
        }
        if (h < 0) {
            throw full(sizeBytes, needed, mask + 1);
        }
        // Zero it: the slots may hold an earlier mapping's bytes.
        memory.asSlice((long) h << IO_TLB_SHIFT, sizeBytes).fill((byte) 0);
        return dmaBase + ((long) h << IO_TLB_SHIFT);
    }

    /**
     * Frees an allocation made by {@link #alloc}.
     *
     * @param dmaAddr   the address {@link #alloc} returned
     * @param sizeBytes the size given to {@link #alloc}
     * @throws IllegalArgumentException if {@code dmaAddr} is not the start of a live coherent
     *                                  allocation or the size differs from its
     */
    public void free(long dmaAddr, long sizeBytes) {
        int idx = slotOf(dmaAddr, "free");
        Area area = areaOfSlot(idx);
        int nslots;
        area.lock.lock();
        try {
            nslots = checkCoherent(idx, dmaAddr, sizeBytes);
            if (nslots <= IO_TLB_SEGSIZE) {
                releaseLocked(area, idx, nslots);
                return;
            }
        } finally {
            area.lock.unlock();
        }
        // A multi-segment allocation may span areas: free it holding them all, checking again
        // since another thread may have freed it in between.
        lockAllAreas();
        try {
            checkCoherent(idx, dmaAddr, sizeBytes);
            slots.release(idx, nslots);
            addAreaUsage(idx, nslots, -1);
            usedSlots.addAndGet(-nslots);
        } finally {
            unlockAllAreas();
        }
    }

    private int checkCoherent(int idx, long dmaAddr, long sizeBytes) {
        int h = slots.head[idx];
        if (h < 0 || slots.state[h] != SlotTable.COHERENT) {
            throw misuse("free", dmaAddr, h < 0 ? "is not allocated" : "is not a coherent allocation");
        }
        if (h != idx || dmaAddr != dmaBase + ((long) h << IO_TLB_SHIFT)) {
            throw misuse("free", dmaAddr, "is not the start of its allocation");
        }
        if (sizeBytes != slots.allocSize[h]) {
            throw misuse("free", dmaAddr, "was allocated with " + slots.allocSize[h] + " bytes, not " + sizeBytes);
        }
        return slots.slotCount[h];
    }

    /**
     * The driver's view of part of the pool (of a coherent allocation, say).
     *
     * @param dmaAddr     the first byte's DMA address
     * @param lengthBytes the length
     * @return a slice of the pool's memory
     * @throws IllegalArgumentException if the range is not inside the pool
     */
    public MemorySegment cpuSegment(long dmaAddr, long lengthBytes) {
        if (!contains(dmaAddr, lengthBytes)) {
            throw new IllegalArgumentException("[0x" + Long.toHexString(dmaAddr) + ", +" + Long.toUnsignedString(lengthBytes)
                    + ") is not inside pool " + this);
        }
        return memory.asSlice(dmaAddr - dmaBase, lengthBytes);
    }

    /**
     * Whether {@code [dmaAddr, dmaAddr + lengthBytes)} lies inside the pool. Overflow-safe.
     *
     * @param dmaAddr     the first address
     * @param lengthBytes the length (unsigned)
     * @return whether the whole range is inside
     */
    public boolean contains(long dmaAddr, long lengthBytes) {
        long offset = dmaAddr - dmaBase;
        return Long.compareUnsigned(offset, sizeBytes) <= 0 && Long.compareUnsigned(lengthBytes, sizeBytes - offset) <= 0;
    }

    // ---------------------------------------------------------------------------------------------
    // Slot search and release

    /** Finds and claims slots in one area, recording the allocation at its head slot. */
    private int allocate(int nslots, long mask, long target, long sizeBytes, byte state, DmaDirection direction,
                         long origAddr, int offset, MemorySegment origSegment, long origOffset) {
        int first = Math.floorMod(Thread.currentThread().threadId(), areas.length);
        // Pass 0 skips areas whose lock another thread holds; pass 1 waits for them.
        for (int pass = 0; pass < 2; pass++) {
            for (int k = 0; k < areas.length; k++) {
                Area area = areas[first + k < areas.length ? first + k : first + k - areas.length];
                if (pass == 0) {
                    if (area.slots() - area.used < nslots || !area.lock.tryLock()) {
                        continue;
                    }
                } else {
                    area.lock.lock();
                }
                try {
                    int h = area.slots() - area.used < nslots ? -1 : searchArea(area, nslots, mask, target);
                    if (h >= 0) {
                        slots.claim(h, nslots, h);
                        record(h, nslots, state, direction, origAddr, sizeBytes, offset, origSegment, origOffset);
                        area.used += nslots;
                        area.hint = h + nslots < area.end ? h + nslots : area.start;
                        if (state == SlotTable.MAPPED) {
                            area.bytesToDevice += sizeBytes; // copied in right after the lock is dropped
                        }
                        countUsed(nslots);
                        return h;
                    }
                } finally {
                    area.lock.unlock();
                }
            }
        }
        if (state == SlotTable.COHERENT) {
            return -1;
        }
        throw full(sizeBytes, nslots, mask + 1);
    }

    private int searchArea(Area area, int nslots, long mask, long target) {
        int h = slots.search(area.hint, area.end, nslots, mask, target);
        return h >= 0 ? h : slots.search(area.start, area.hint, nslots, mask, target);
    }

    /** Claims whole segments for a large coherent allocation, holding every area lock. */
    private int allocateSegments(int nslots, long mask, long sizeBytes) {
        lockAllAreas();
        try {
            int h = slots.searchSegments(nslots, mask);
            if (h >= 0) {
                slots.claim(h, nslots, h);
                record(h, nslots, SlotTable.COHERENT, DmaDirection.BIDIRECTIONAL, 0, sizeBytes, 0, null, 0);
                addAreaUsage(h, nslots, +1);
                countUsed(nslots);
            }
            return h;
        } finally {
            unlockAllAreas();
        }
    }

    private void record(int h, int nslots, byte state, DmaDirection direction, long origAddr, long sizeBytes, int offset,
                        MemorySegment origSegment, long origOffset) {
        slots.state[h] = state;
        slots.direction[h] = (byte) direction.ordinal();
        slots.slotCount[h] = nslots;
        slots.alignOffset[h] = offset;
        slots.origAddr[h] = origAddr;
        slots.allocSize[h] = sizeBytes;
        slots.origSegment[h] = origSegment;
        slots.origOffset[h] = origOffset;
    }

    /** Frees a streaming mapping or a single-segment allocation (its slots lie in one area). */
    private void release(int h, int nslots) {
        Area area = areaOfSlot(h);
        area.lock.lock();
        try {
            releaseLocked(area, h, nslots);
        } finally {
            area.lock.unlock();
        }
    }

    private void releaseLocked(Area area, int h, int nslots) {
        slots.release(h, nslots);
        area.used -= nslots;
        area.hint = h;
        usedSlots.addAndGet(-nslots);
    }

    private void countUsed(int nslots) {
        long used = usedSlots.addAndGet(nslots);
        if (used > highWaterSlots.get()) {
            highWaterSlots.accumulateAndGet(used, Math::max);
        }
    }

    /** Adds {@code sign * slots} to the usage of every area that {@code [idx, idx + n)} touches. */
    private void addAreaUsage(int idx, int n, int sign) {
        int end = idx + n;
        for (int p = idx; p < end; ) {
            Area area = areaOfSlot(p);
            int q = Math.min(area.end, end);
            area.used += sign * (q - p);
            p = q;
        }
    }

    private void lockAllAreas() {
        // Always in index order; other paths hold at most one area lock, so this cannot deadlock.
        for (Area area : areas) {
            area.lock.lock();
        }
    }

    private void unlockAllAreas() {
        for (int a = areas.length - 1; a >= 0; a--) {
            areas[a].lock.unlock();
        }
    }

    // ---------------------------------------------------------------------------------------------
    // Checks and small helpers

    private int slotOf(long dmaAddr, String op) {
        long offset = dmaAddr - dmaBase;
        if (Long.compareUnsigned(offset, sizeBytes) >= 0) {
            throw misuse(op, dmaAddr, "is not inside the pool");
        }
        return (int) (offset >>> IO_TLB_SHIFT);
    }

    private Area areaOfSlot(int idx) {
        return areaOfSegment[idx / IO_TLB_SEGSIZE];
    }

    /** The head of the live streaming mapping holding slot {@code idx}; the caller holds the area lock. */
    private int liveMapping(int idx, long dmaAddr, String op) {
        int h = slots.head[idx];
        if (h < 0) {
            throw misuse(op, dmaAddr, "is not inside a live mapping");
        }
        return switch (slots.state[h]) {
            case SlotTable.MAPPED -> h;
            case SlotTable.COHERENT -> throw misuse(op, dmaAddr, "lies in a coherent allocation, not a streaming mapping");
            default -> throw misuse(op, dmaAddr, "lies in a mapping that is being unmapped");
        };
    }

    private long mappingStart(int h) {
        return dmaBase + ((long) h << IO_TLB_SHIFT) + slots.alignOffset[h];
    }

    private long streamingAllocMask(long sizeBytes) {
        if (allocAlignment != 0) {
            return Math.max(allocAlignment, IO_TLB_SIZE) - 1;
        }
        return minAlignMask == 0 && sizeBytes >= PAGE_SIZE ? PAGE_SIZE - 1 : IO_TLB_MASK;
    }

    private static int slotsFor(long bytes) {
        return (int) ((bytes + IO_TLB_MASK) >>> IO_TLB_SHIFT);
    }

    private IllegalArgumentException misuse(String op, long dmaAddr, String why) {
        return new IllegalArgumentException("pool '" + name + "': " + op + " of 0x" + Long.toHexString(dmaAddr) + ": " + why);
    }

    private SwiotlbFullException full(long requestBytes, long nslots, long alignment) {
        failedMappings.increment();
        return new SwiotlbFullException(name, requestBytes, nslots, alignment, usedSlots.get(), nslabs);
    }

    // ---------------------------------------------------------------------------------------------
    // Accessors

    /**
     * The largest buffer {@link #mapSingle} accepts: a segment less the largest alignment offset
     * that {@code minAlignMask} can require.
     *
     * @return bytes
     */
    public long maxMappingSize() {
        long baseAllocMask = allocAlignment != 0 ? Math.max(allocAlignment, IO_TLB_SIZE) - 1 : IO_TLB_MASK;
        return IO_TLB_SEGMENT_BYTES - (minAlignMask & baseAllocMask);
    }

    /**
     * A snapshot of the counters.
     *
     * @return the statistics
     */
    public SwiotlbStats stats() {
        long toDevice = 0;
        long fromDevice = 0;
        for (Area area : areas) {
            area.lock.lock();
            try {
                toDevice += area.bytesToDevice;
                fromDevice += area.bytesFromDevice;
            } finally {
                area.lock.unlock();
            }
        }
        return new SwiotlbStats(name, nslabs, usedSlots.get(), highWaterSlots.get(), failedMappings.sum(), toDevice, fromDevice);
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
     * The DMA address of the pool's first byte.
     *
     * @return the driver's guest-physical address of the pool
     */
    public long dmaBase() {
        return dmaBase;
    }

    /**
     * The pool's size.
     *
     * @return bytes
     */
    public long sizeBytes() {
        return sizeBytes;
    }

    /**
     * The pool's size in slots.
     *
     * @return slots
     */
    public int totalSlots() {
        return nslabs;
    }

    /**
     * The number of areas (locks).
     *
     * @return areas
     */
    public int areaCount() {
        return areas.length;
    }

    /**
     * The {@code minAlignMask} given at creation.
     *
     * @return the mask
     */
    public long minAlignMask() {
        return minAlignMask;
    }

    /**
     * The allocation alignment given at creation.
     *
     * @return 0 for the default rule, else a power of two
     */
    public long allocAlignment() {
        return allocAlignment;
    }

    /**
     * The driver's address space, which translates {@code origAddr}.
     *
     * @return the address space
     */
    public GuestAddressSpace driverSpace() {
        return driverSpace;
    }

    @Override
    public String toString() {
        return "SwiotlbPool(" + name + " [0x" + Long.toHexString(dmaBase) + ", 0x" + Long.toHexString(dmaBase + sizeBytes - 1)
                + "], " + nslabs + " slots, " + areas.length + " areas)";
    }
}
