package dev.airlock.hypervisor;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * One direction of a doorbell: a pending-flags word that the ringer ORs into and the target
 * exchanges with zero, and a mask.
 *
 * <p>An interrupt is raised when a ring turns the word from zero to non-zero while unmasked, and on
 * unmask when the word is non-zero. That loses no wake-up: when the word becomes non-zero, either
 * the ringer sees the doorbell unmasked and raises, or the mask was set, and the unmask that
 * follows sees the flags (ring: OR then read mask; unmask: write mask then read flags, all
 * volatile, so at least one side sees the other's write). A ring onto a non-zero word raises
 * nothing: the ring that made it non-zero already did, or the unmask will, and the target reads
 * every flag in one exchange.
 */
final class Doorbell {
    private static final VarHandle PENDING;

    static {
        try {
            PENDING = MethodHandles.lookup().findVarHandle(Doorbell.class, "pending", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** The target's view of the ringer: where DOORBELL is raised. */
    private final Link target;
    private volatile long pending;
    private volatile boolean masked;

    Doorbell(Link target) {
        this.target = target;
    }

    void ring(long flags) {
        long previous = (long) PENDING.getAndBitwiseOr(this, flags);
        if (previous == 0 && !masked) {
            target.raise(InterruptCause.DOORBELL);
        }
    }

    long readAndClear() {
        return (long) PENDING.getAndSet(this, 0L);
    }

    void mask() {
        masked = true;
    }

    void unmask() {
        masked = false;
        if (pending != 0) {
            target.raise(InterruptCause.DOORBELL);
        }
    }
}
