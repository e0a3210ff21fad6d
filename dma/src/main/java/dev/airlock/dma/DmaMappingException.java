package dev.airlock.dma;

import java.io.Serial;

/** A buffer could not be made available to the device; the message says why. */
public class DmaMappingException extends RuntimeException {
    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what could not be mapped and why
     */
    public DmaMappingException(String message) {
        super(message);
    }

    /**
     * Creates the exception with a cause.
     *
     * @param message what could not be mapped and why
     * @param cause   the underlying failure (a pool exhaustion, say)
     */
    public DmaMappingException(String message, Throwable cause) {
        super(message, cause);
    }
}
