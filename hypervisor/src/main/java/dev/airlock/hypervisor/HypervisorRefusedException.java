package dev.airlock.hypervisor;

import java.io.Serial;
import java.util.Objects;

/**
 * The hypervisor refused a call. The {@link #reason() reason} is for code; the message is for
 * people and says who asked for what and why not, for example
 * {@code "vm 'guest2' may not send to vm 'guest3': both are secondaries, and a secondary talks only to the primary"}.
 *
 * <p>A refusal is a checked outcome of the hypervisor's access rules, not a programming error:
 * malformed arguments (a negative size, a null id) throw {@link IllegalArgumentException} or
 * {@link NullPointerException} instead.
 */
public final class HypervisorRefusedException extends RuntimeException {
    @Serial
    private static final long serialVersionUID = 1L;

    private final RefusalReason reason;

    /**
     * Creates the exception.
     *
     * @param reason  why
     * @param message what was refused, naming the VMs involved
     */
    public HypervisorRefusedException(RefusalReason reason, String message) {
        super(message);
        this.reason = Objects.requireNonNull(reason, "reason");
    }

    /**
     * Why the call was refused.
     *
     * @return the reason
     */
    public RefusalReason reason() {
        return reason;
    }
}
