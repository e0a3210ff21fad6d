package dev.airlock.memory;

/** What a region of a guest-physical address space is. */
public enum RegionKind {
    /** RAM that only its own VM can see (anonymous memory, never handed to another process). */
    PRIVATE,
    /** A region the hypervisor shares between exactly two VMs (a memfd mapped {@code MAP_SHARED}). */
    SHARED
}
