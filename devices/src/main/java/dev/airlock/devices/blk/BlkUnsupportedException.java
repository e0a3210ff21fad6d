package dev.airlock.devices.blk;

import java.io.Serial;

/**
 * The device does not support the request (VIRTIO_BLK_S_UNSUPP), or the driver knows it cannot
 * before sending it (the feature was not negotiated).
 */
public final class BlkUnsupportedException extends BlkIoException {
    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param message what is unsupported
     */
    public BlkUnsupportedException(String message) {
        super(message, BlkRequestLayout.VIRTIO_BLK_S_UNSUPP);
    }
}
