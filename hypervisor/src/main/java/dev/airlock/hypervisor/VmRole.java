package dev.airlock.hypervisor;

/** What a VM is for. A hypervisor has at most one live primary and any number of secondaries. */
public enum VmRole {
    /** The VM that runs the device backends and may be connected to every secondary. */
    PRIMARY,
    /** A guest; it may be connected to the primary only, never to another secondary. */
    SECONDARY
}
