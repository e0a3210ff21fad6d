package dev.airlock.hypervisor;

/**
 * Why an interrupt was injected into a VM. Each cause is about one peer VM
 * ({@link Interrupt#peer()}). Interrupts of the same cause and peer coalesce while pending: the
 * handler must drain (receive until empty, read-and-clear the doorbell) on each one, and then sees
 * every event: none is lost.
 */
public enum InterruptCause {
    /** The message queue from the peer went from empty to non-empty. */
    MESSAGE_AVAILABLE,
    /** The message queue toward the peer went from full to not full. */
    QUEUE_NOT_FULL,
    /** The peer rang this VM's doorbell while it was unmasked, or it was unmasked with flags pending. */
    DOORBELL,
    /**
     * The peer was destroyed or died: every grant with it is revoked, and the shared regions with it
     * are gone from this VM's address space. The in-process runtime unmaps this VM's side of those
     * regions once the handler for this interrupt returns, so the handler is the place to reset the
     * devices that used them.
     */
    PEER_GONE;

    /** The causes in delivery order, without the copy that {@code values()} makes. */
    static final InterruptCause[] ALL = values();

    /**
     * This cause as one bit of a pending-causes word.
     *
     * @return {@code 1 << ordinal()}
     */
    int bit() {
        return 1 << ordinal();
    }
}
