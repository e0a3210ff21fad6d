package dev.airlock.hypervisor;

/**
 * The lifecycle of a VM: {@code CREATED → RUNNING ⇄ STOPPED}, and from any state to
 * {@code DESTROYED}, which is final.
 */
public enum VmState {
    /** Created and configured (regions, queues, doorbells may be connected), never started. */
    CREATED,
    /** Running: its hypercalls are served and its interrupts delivered. */
    RUNNING,
    /**
     * Paused: its own hypercalls are refused and interrupts are held pending (none lost) until it
     * is started again. Peers may still send to it and ring it; its queues fill up.
     */
    STOPPED,
    /** Destroyed, or died: its grants are revoked, its memory released, its peers told. */
    DESTROYED
}
