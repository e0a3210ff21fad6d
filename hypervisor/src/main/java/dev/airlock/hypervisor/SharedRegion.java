package dev.airlock.hypervisor;

import dev.airlock.memory.SharedMemory;
import dev.airlock.memory.sys.Linux;

/**
 * A shared region: one memfd, mapped twice ({@code MAP_SHARED}), once for each of its two VMs, and
 * seen in each VM's address space at that VM's own base. Two mappings rather than one segment in
 * two address spaces keep the in-process runtime honest: the two sides reach the bytes at
 * different virtual addresses as well as different guest-physical ones, as two processes would.
 *
 * <p>Each side's mapping is released on its own ({@link #release}): when its VM is destroyed, or
 * after it has handled the other side's death. The memfd is closed when both are released.
 */
final class SharedRegion {
    final SharedRegionInfo info;
    final Vm primary;
    final Vm secondary;
    final SharedRegionMapping primaryMapping;
    final SharedRegionMapping secondaryMapping;
    /** Guarded by {@code this}; each set to null once released. */
    private SharedMemory primaryMemory;
    private SharedMemory secondaryMemory;
    private int fd;

    private SharedRegion(SharedRegionInfo info, Vm primary, Vm secondary, int fd,
                         SharedMemory primaryMemory, SharedMemory secondaryMemory) {
        this.info = info;
        this.primary = primary;
        this.secondary = secondary;
        this.fd = fd;
        this.primaryMemory = primaryMemory;
        this.secondaryMemory = secondaryMemory;
        this.primaryMapping = new SharedRegionMapping(info.id(), secondary.id(), primaryMemory.region(info.primaryGpaBase()));
        this.secondaryMapping = new SharedRegionMapping(info.id(), primary.id(), secondaryMemory.region(info.secondaryGpaBase()));
    }

    /** Creates the memfd and both mappings, undoing what was done if a step fails. */
    static SharedRegion create(SharedRegionInfo info, Vm primary, Vm secondary) {
        int fd = Linux.memfdCreate("airlock:" + info.name(), info.sizeBytes(), Linux.MFD_CLOEXEC);
        SharedMemory first = null;
        SharedMemory second = null;
        try {
            first = SharedMemory.map(info.name(), fd, info.sizeBytes(), false);
            second = SharedMemory.map(info.name(), fd, info.sizeBytes(), false);
            return new SharedRegion(info, primary, secondary, fd, first, second);
        } catch (RuntimeException e) {
            if (second != null) {
                second.close();
            }
            if (first != null) {
                first.close();
            }
            Linux.close(fd);
            throw e;
        }
    }

    SharedRegionMapping mappingOf(Vm vm) {
        return vm == primary ? primaryMapping : secondaryMapping;
    }

    Vm peerOf(Vm vm) {
        return vm == primary ? secondary : primary;
    }

    /** Removes the region from both address spaces and both VMs' lists; the memory stays mapped. */
    void detach() {
        primary.detach(primaryMapping);
        secondary.detach(secondaryMapping);
    }

    /**
     * Unmaps {@code side}'s mapping, and closes the memfd once both are unmapped. Idempotent. Slices
     * of the mapping still held become inaccessible: accesses throw {@link IllegalStateException}.
     */
    synchronized void release(Vm side) {
        if (side == primary && primaryMemory != null) {
            primaryMemory.close();
            primaryMemory = null;
        } else if (side == secondary && secondaryMemory != null) {
            secondaryMemory.close();
            secondaryMemory = null;
        }
        if (primaryMemory == null && secondaryMemory == null && fd >= 0) {
            Linux.close(fd);
            fd = -1;
        }
    }
}
