package dev.airlock.transport;

import java.io.Serial;

/**
 * A driver-side transport operation failed: the device did not answer in time, answered with an
 * error, refused the initialisation, or the transport is broken (after a timeout or the device's
 * death) or detached (its backend process died). Once broken, a transport stays broken; a detached
 * one works again when a new backend attaches ({@link DriverTransport#isDetached()}).
 */
public final class TransportException extends RuntimeException {
    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what failed, naming the device and the field or register
     */
    public TransportException(String message) {
        super(message);
    }
}
