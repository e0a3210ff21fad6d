package dev.airlock.devices.blk;

import java.io.IOException;
import java.io.Serial;

/**
 * A request could not complete because the device failed as a whole: it set DEVICE_NEEDS_RESET and
 * was not (or could not be) recovered, its transport broke (the backend's VM is gone), or the
 * {@link BlockDevice} was closed. Whether the request reached the disk is unknown.
 */
public final class BlkDeviceFailedException extends IOException {
    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what happened
     * @param cause   the underlying failure, or null
     */
    public BlkDeviceFailedException(String message, Throwable cause) {
        super(message, cause);
    }
}
