package dev.airlock.virtio;

import dev.airlock.dma.CoherentBuffer;
import dev.airlock.dma.DmaMappingException;
import dev.airlock.dma.DmaOps;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.RegionKind;
import dev.airlock.memory.UnmappedAddressException;
import dev.airlock.swiotlb.DmaDirection;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.BitSet;
import java.util.HashMap;
import java.util.Map;

/**
 * Test-only DMA operations over real shared memory. DIRECT: buffers must already lie in the shared
 * region and map to themselves. BOUNCE: buffers may lie anywhere in the driver's space; each mapping
 * takes a fixed-size slot in the shared region, copied in for TO_DEVICE and back for FROM_DEVICE,
 * and every unmap must match a live mapping exactly (address, length, direction). Coherent buffers
 * come from a bump allocator at the start of the shared region.
 */
final class TestDmaOps implements DmaOps {
    enum Mode { DIRECT, BOUNCE }

    record Mapping(long gpa, long lengthBytes, DmaDirection direction) {
    }

    private final GuestAddressSpace driverSpace;
    private final Mode mode;
    private final long coherentBase;
    private final long coherentEnd;
    private final long slotBase;
    private final int slotBytes;
    private final BitSet freeSlots;
    private final Map<Long, ArrayDeque<Mapping>> live = new HashMap<>();
    private long coherentNext;
    private int liveCount;
    private long maps;
    private long unmaps;
    private int coherentLive;
    /** Fail the mapping when {@link #maps} reaches this value; -1 never. */
    private long failAtMap = -1;

    TestDmaOps(GuestAddressSpace driverSpace, Mode mode, long coherentBase, long coherentBytes, long slotBase, int slotCount, int slotBytes) {
        this.driverSpace = driverSpace;
        this.mode = mode;
        this.coherentBase = coherentBase;
        this.coherentNext = coherentBase;
        this.coherentEnd = coherentBase + coherentBytes;
        this.slotBase = slotBase;
        this.slotBytes = slotBytes;
        this.freeSlots = new BitSet(slotCount);
        freeSlots.set(0, slotCount);
    }

    @Override
    public synchronized long mapSingle(long gpa, long lengthBytes, DmaDirection direction) {
        if (lengthBytes < 1) {
            throw new IllegalArgumentException("length " + lengthBytes);
        }
        if (maps == failAtMap) {
            maps++;
            throw new DmaMappingException("injected failure");
        }
        maps++;
        long dmaAddr;
        if (mode == Mode.DIRECT) {
            try {
                if (driverSpace.regionOf(gpa, lengthBytes).kind() != RegionKind.SHARED) {
                    throw new DmaMappingException("direct DMA of private memory at 0x" + Long.toHexString(gpa));
                }
            } catch (UnmappedAddressException e) {
                throw new DmaMappingException("unmapped", e);
            }
            dmaAddr = gpa;
        } else {
            if (lengthBytes > slotBytes) {
                throw new DmaMappingException("buffer larger than a slot");
            }
            int slot = freeSlots.nextSetBit(0);
            if (slot < 0) {
                throw new DmaMappingException("bounce slots exhausted");
            }
            freeSlots.clear(slot);
            dmaAddr = slotBase + (long) slot * slotBytes;
            MemorySegment slotSegment = driverSpace.translate(dmaAddr, lengthBytes);
            if (direction.toDevice()) {
                slotSegment.copyFrom(driverSpace.translate(gpa, lengthBytes));
            } else {
                slotSegment.fill((byte) 0xEE); // stale bytes the device must overwrite
            }
        }
        live.computeIfAbsent(dmaAddr, k -> new ArrayDeque<>()).add(new Mapping(gpa, lengthBytes, direction));
        liveCount++;
        return dmaAddr;
    }

    @Override
    public synchronized void unmapSingle(long dmaAddr, long lengthBytes, DmaDirection direction) {
        ArrayDeque<Mapping> q = live.get(dmaAddr);
        if (q == null || q.isEmpty()) {
            throw new AssertionError("unmap of 0x" + Long.toHexString(dmaAddr) + " which is not mapped");
        }
        Mapping m = q.poll();
        if (q.isEmpty()) {
            live.remove(dmaAddr);
        }
        if (m.lengthBytes() != lengthBytes || m.direction() != direction) {
            throw new AssertionError("unmap " + lengthBytes + "/" + direction + " does not match " + m);
        }
        liveCount--;
        unmaps++;
        if (mode == Mode.BOUNCE) {
            if (direction.fromDevice()) {
                driverSpace.translate(m.gpa(), lengthBytes).copyFrom(driverSpace.translate(dmaAddr, lengthBytes));
            }
            freeSlots.set((int) ((dmaAddr - slotBase) / slotBytes));
        }
    }

    @Override
    public void syncForCpu(long dmaAddr, long lengthBytes, DmaDirection direction) {
        throw new UnsupportedOperationException("not used by the virtqueue");
    }

    @Override
    public void syncForDevice(long dmaAddr, long lengthBytes, DmaDirection direction) {
        throw new UnsupportedOperationException("not used by the virtqueue");
    }

    @Override
    public synchronized CoherentBuffer allocCoherent(long sizeBytes, long alignment) {
        long start = (coherentNext + alignment - 1) & -alignment;
        if (start + sizeBytes > coherentEnd) {
            throw new DmaMappingException("coherent area exhausted");
        }
        coherentNext = start + sizeBytes;
        coherentLive++;
        MemorySegment segment = driverSpace.translate(start, sizeBytes);
        segment.fill((byte) 0);
        return new CoherentBuffer(start, segment);
    }

    @Override
    public synchronized void freeCoherent(CoherentBuffer buffer) {
        coherentLive--;
    }

    synchronized int liveMappings() {
        return liveCount;
    }

    synchronized long maps() {
        return maps;
    }

    synchronized long unmaps() {
        return unmaps;
    }

    synchronized int coherentLive() {
        return coherentLive;
    }

    synchronized void failAtMap(long mapNumber) {
        failAtMap = mapNumber;
    }

    long coherentBase() {
        return coherentBase;
    }
}
