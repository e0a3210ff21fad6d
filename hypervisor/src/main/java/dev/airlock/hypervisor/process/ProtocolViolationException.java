package dev.airlock.hypervisor.process;

import java.io.Serial;

/**
 * The other end of a daemon connection sent something the protocol ({@link WireLayout}) does not
 * allow: a bad length, an unknown type, a malformed field, descriptors where none belong. The
 * connection is dropped; nothing else is affected.
 */
public final class ProtocolViolationException extends RuntimeException {
    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what was wrong, naming the field
     */
    public ProtocolViolationException(String message) {
        super(message);
    }
}
