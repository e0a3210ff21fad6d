package dev.airlock.hypervisor;

import java.util.Objects;

/**
 * One interrupt delivered to a VM's {@link InterruptHandler}.
 *
 * @param cause why
 * @param peer  the peer VM it is about: the sender, the receiver of a full queue, the ringer, or the VM that is gone
 */
public record Interrupt(InterruptCause cause, VmId peer) {
    /**
     * Checks the interrupt.
     *
     * @throws NullPointerException if a component is null
     */
    public Interrupt {
        Objects.requireNonNull(cause, "cause");
        Objects.requireNonNull(peer, "peer");
    }
}
