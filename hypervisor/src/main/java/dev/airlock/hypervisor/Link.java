package dev.airlock.hypervisor;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.List;

/**
 * What one VM ({@code self}) holds toward one peer: the message queue and doorbell from the peer
 * into {@code self}, the pending interrupt causes about the peer, and the shared regions with it.
 * Each connected pair has two links, each the other's {@link #reverse}; what {@code self} sends
 * goes into {@code reverse}'s inbound queue.
 *
 * <p>A link is created by the control plane under the hypervisor's lock and never removed while
 * {@code self} lives: when the peer goes, it stays as a revoked tombstone, so that calls toward the
 * dead peer are refused with {@link RefusalReason#REVOKED} rather than {@link RefusalReason#NO_SUCH_VM}.
 */
final class Link {
    private static final VarHandle PENDING_CAUSES;

    static {
        try {
            PENDING_CAUSES = MethodHandles.lookup().findVarHandle(Link.class, "pendingCauses", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    final Vm self;
    final Vm peer;
    /** Set once, under the hypervisor lock, before either link is published. */
    Link reverse;
    volatile MessageQueue inboundQueue;
    volatile Doorbell inboundDoorbell;
    volatile boolean revoked;
    /** {@link InterruptCause#bit()}s raised and not yet delivered; non-zero iff queued for delivery. */
    @SuppressWarnings("unused") // accessed through PENDING_CAUSES
    private volatile int pendingCauses;
    /** One preallocated interrupt per cause, so that delivery allocates nothing. */
    private final Interrupt[] interrupts;
    /** This side of the regions shared with the peer, unmapped after PEER_GONE is handled. Guarded by {@code this}. */
    private final List<SharedRegion> retiredRegions = new ArrayList<>();

    Link(Vm self, Vm peer) {
        this.self = self;
        this.peer = peer;
        this.interrupts = new Interrupt[InterruptCause.ALL.length];
        for (InterruptCause cause : InterruptCause.ALL) {
            interrupts[cause.ordinal()] = new Interrupt(cause, peer.id());
        }
    }

    Interrupt interrupt(InterruptCause cause) {
        return interrupts[cause.ordinal()];
    }

    /**
     * Sets a cause pending.
     *
     * @return the causes pending before: zero means the caller must queue this link for delivery
     */
    int setPending(InterruptCause cause) {
        return (int) PENDING_CAUSES.getAndBitwiseOr(this, cause.bit());
    }

    /** Takes every pending cause, leaving none. */
    int takePending() {
        return (int) PENDING_CAUSES.getAndSet(this, 0);
    }

    /** Injects an interrupt about the peer into {@code self}. */
    void raise(InterruptCause cause) {
        self.interrupts().raise(this, cause);
    }

    /** The queue from {@code self} to the peer, or null if none was connected. */
    MessageQueue outboundQueue() {
        return reverse.inboundQueue;
    }

    /** The doorbell from {@code self} to the peer, or null if none was connected. */
    Doorbell outboundDoorbell() {
        return reverse.inboundDoorbell;
    }

    synchronized void retire(SharedRegion region) {
        retiredRegions.add(region);
    }

    /** Unmaps {@code self}'s side of every region retired here. */
    void releaseRetiredRegions() {
        List<SharedRegion> regions;
        synchronized (this) {
            if (retiredRegions.isEmpty()) {
                return;
            }
            regions = List.copyOf(retiredRegions);
            retiredRegions.clear();
        }
        for (SharedRegion region : regions) {
            self.release(region);
        }
    }
}
