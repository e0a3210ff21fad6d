package dev.airlock.memory;

import java.io.Serial;

/**
 * A guest-supplied address or length does not describe memory the caller may use. This is a
 * protocol violation by the guest or peer, not a programming error: callers catch it, mark the
 * queue or device broken, and keep the rest of the system running.
 */
public class GuestMemoryException extends RuntimeException {
    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what was wrong, with the address and the space named
     */
    public GuestMemoryException(String message) {
        super(message);
    }
}
