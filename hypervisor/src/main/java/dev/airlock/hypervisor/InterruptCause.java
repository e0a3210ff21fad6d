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
    PEER_GONE,
    /**
     * Multi-process runtime only, raised in a secondary about its primary: the backend process that
     * served this pair died (or closed its connection). Unlike {@link #PEER_GONE} nothing is revoked:
     * the shared regions, message queues and doorbells stay, but the devices behind them are gone
     * with their state, and the hypervisor dropped the messages queued toward them. Every request in
     * flight to them is lost; drivers stop waiting and wait for {@link #BACKEND_ATTACHED}. The
     * in-process runtime never raises it (it has no backend processes).
     */
    BACKEND_DETACHED,
    /**
     * Multi-process runtime only, raised in a secondary about its primary: a backend process for
     * this pair attached (the first one, or a replacement after {@link #BACKEND_DETACHED}) and was
     * handed the pair's regions and doorbells. Its devices start in the reset state, so a driver
     * initialises them again. When this and {@code BACKEND_DETACHED} coalesce, the detach is
     * delivered first, and the attach only if a backend is attached at delivery time; so the last
     * of the two a handler sees always tells the current state. The in-process runtime never raises it.
     */
    BACKEND_ATTACHED;

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
