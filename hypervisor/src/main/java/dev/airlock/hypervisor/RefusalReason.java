package dev.airlock.hypervisor;

/** Why the hypervisor refused a call. */
public enum RefusalReason {
    /** No live VM has that id (it never existed, or it was destroyed and the caller had no grant with it). */
    NO_SUCH_VM,
    /**
     * The VMs cannot be connected at all: two secondaries, a VM and itself, or a primary/secondary
     * argument that names a VM of the other role.
     */
    WRONG_VM,
    /** The VMs could be connected but the hypervisor has not granted this resource between them. */
    NOT_GRANTED,
    /** The grant existed and was revoked because the peer was destroyed or died. */
    REVOKED,
    /** The calling VM is not running (created but not started, stopped, or destroyed). */
    NOT_RUNNING,
    /** The message is longer than the hypervisor's maximum message size. */
    MESSAGE_TOO_LARGE,
    /**
     * A control-plane request conflicts with what exists: a second primary, a duplicate name, a
     * region overlapping another in an address space, a pair already connected.
     */
    CONFLICT
}
