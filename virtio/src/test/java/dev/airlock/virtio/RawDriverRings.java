package dev.airlock.virtio;

import dev.airlock.dma.CoherentBuffer;

import java.lang.foreign.MemorySegment;

/**
 * A hostile (or merely hand-written) driver: writes descriptors, avail entries and the avail idx
 * exactly as told, through the layout var handles, into rings in real shared memory.
 */
final class RawDriverRings {
    final int size;
    final CoherentBuffer desc;
    final CoherentBuffer avail;
    final CoherentBuffer used;
    private final TestBed bed;
    private int availIdx;

    RawDriverRings(TestBed bed, int size) {
        this.bed = bed;
        this.size = size;
        this.desc = bed.dma.allocCoherent(VirtqDescLayout.tableLengthBytes(size), 64);
        this.avail = bed.dma.allocCoherent(VirtqAvailLayout.lengthBytes(size), 64);
        this.used = bed.dma.allocCoherent(VirtqUsedLayout.lengthBytes(size), 64);
    }

    VirtqueueDevice device(long features) {
        return new VirtqueueDevice("raw", bed.deviceSpace, size, desc.dmaAddr(), avail.dmaAddr(), used.dmaAddr(), features);
    }

    void desc(int index, long addr, long length, int flags, int next) {
        writeDesc(desc.segment(), index, addr, length, flags, next);
    }

    static void writeDesc(MemorySegment table, int index, long addr, long length, int flags, int next) {
        long base = VirtqDescLayout.descOffset(index);
        VirtqDescLayout.ADDR.set(table, base, addr);
        VirtqDescLayout.LEN.set(table, base, (int) length);
        VirtqDescLayout.FLAGS.set(table, base, (short) flags);
        VirtqDescLayout.NEXT.set(table, base, (short) next);
    }

    /** An indirect table of {@code entries} descriptors in coherent memory. */
    CoherentBuffer indirectTable(int entries) {
        return bed.dma.allocCoherent((long) entries * VirtqDescLayout.DESC_LENGTH, 16);
    }

    /** Writes ring entries for {@code heads} and publishes the new avail idx. */
    void makeAvailable(int... heads) {
        for (int head : heads) {
            VirtqAvailLayout.U16.set(avail.segment(), VirtqAvailLayout.ringEntryOffset(availIdx & (size - 1)), (short) head);
            availIdx = (availIdx + 1) & 0xffff;
        }
        VirtqAvailLayout.IDX.setRelease(avail.segment(), 0L, (short) availIdx);
    }

    void setAvailIdx(int idx) {
        availIdx = idx & 0xffff;
        VirtqAvailLayout.IDX.setRelease(avail.segment(), 0L, (short) availIdx);
    }

    int usedIdx() {
        return (short) VirtqUsedLayout.IDX.getAcquire(used.segment(), 0L) & 0xffff;
    }

    long usedId(int slot) {
        return Integer.toUnsignedLong((int) VirtqUsedLayout.ELEM_ID.get(used.segment(), VirtqUsedLayout.elemOffset(slot)));
    }

    long usedLen(int slot) {
        return Integer.toUnsignedLong((int) VirtqUsedLayout.ELEM_LEN.get(used.segment(), VirtqUsedLayout.elemOffset(slot)));
    }
}
