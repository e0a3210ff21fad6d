package dev.airlock.vhostuser;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The payloads the frontend sends, built on the heap in the layouts of {@link VhostUserVringLayout}
 * and {@link VhostUserMemoryRegionLayout} (native byte order, as vhost-user.rst specifies).
 */
final class FrontendMessages {
    private FrontendMessages() {
    }

    /** No payload. */
    static MemorySegment empty() {
        return MemorySegment.ofArray(new byte[0]);
    }

    /** A u64 payload (features, SET_VRING_KICK/CALL's queue index). */
    static MemorySegment u64(long value) {
        return MemorySegment.ofArray(new long[] {value});
    }

    /** A vring state: the queue index and a number (size, base or enable). */
    static MemorySegment state(int index, int num) {
        MemorySegment s = MemorySegment.ofArray(new long[VhostUserVringLayout.STATE_LENGTH / Long.BYTES]);
        s.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserVringLayout.STATE_INDEX_OFFSET, index);
        s.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserVringLayout.STATE_NUM_OFFSET, num);
        return s;
    }

    /** A vring address (flags 0: no logging), with the rings' addresses in the frontend's process. */
    static MemorySegment vringAddr(int index, long descUva, long usedUva, long availUva) {
        MemorySegment addr = MemorySegment.ofArray(new long[VhostUserVringLayout.ADDR_LENGTH / Long.BYTES]);
        addr.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserVringLayout.ADDR_INDEX_OFFSET, index);
        addr.set(ValueLayout.JAVA_LONG_UNALIGNED, VhostUserVringLayout.ADDR_DESC_OFFSET, descUva);
        addr.set(ValueLayout.JAVA_LONG_UNALIGNED, VhostUserVringLayout.ADDR_USED_OFFSET, usedUva);
        addr.set(ValueLayout.JAVA_LONG_UNALIGNED, VhostUserVringLayout.ADDR_AVAIL_OFFSET, availUva);
        return addr;
    }

    /** A SET_MEM_TABLE of one region, mapped from offset 0 of the fd sent with it. */
    static MemorySegment singleRegionTable(long gpa, long sizeBytes, long uva) {
        int length = VhostUserMemoryRegionLayout.tableLength(1);
        MemorySegment table = MemorySegment.ofArray(new long[length / Long.BYTES]);
        table.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserMemoryRegionLayout.NREGIONS_OFFSET, 1);
        long region = VhostUserMemoryRegionLayout.TABLE_HEADER_LENGTH;
        table.set(ValueLayout.JAVA_LONG_UNALIGNED, region + VhostUserMemoryRegionLayout.GUEST_PHYS_ADDR_OFFSET, gpa);
        table.set(ValueLayout.JAVA_LONG_UNALIGNED, region + VhostUserMemoryRegionLayout.MEMORY_SIZE_OFFSET, sizeBytes);
        table.set(ValueLayout.JAVA_LONG_UNALIGNED, region + VhostUserMemoryRegionLayout.USERSPACE_ADDR_OFFSET, uva);
        table.set(ValueLayout.JAVA_LONG_UNALIGNED, region + VhostUserMemoryRegionLayout.MMAP_OFFSET_OFFSET, 0L);
        return table;
    }
}
