package dev.airlock.swiotlb;

import dev.airlock.testkit.TwoVmMemory;

/** {@link TwoVmMemory} with a way to put a swiotlb pool in the shared region. */
final class TestVm extends TwoVmMemory {
    TestVm(long ramBytes, long sharedBytes) {
        super(ramBytes, sharedBytes);
    }

    /** A pool over {@code [offset, offset + sizeBytes)} of the shared region. */
    SwiotlbPool pool(String name, long offset, long sizeBytes, int areas, long minAlignMask, long allocAlignment) {
        return new SwiotlbPool(name, shared.segment().asSlice(offset, sizeBytes), SHARED_BASE + offset, driver, areas,
                minAlignMask, allocAlignment);
    }
}
