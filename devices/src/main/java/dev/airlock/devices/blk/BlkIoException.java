package dev.airlock.devices.blk;

import java.io.IOException;
import java.io.Serial;

/**
 * The device answered a request with VIRTIO_BLK_S_IOERR (an I/O error, a malformed request, a sector
 * range past the capacity, a write to a read-only device) or with a status byte this driver does not
 * know. {@link BlkUnsupportedException} is the UNSUPP case.
 */
public class BlkIoException extends IOException {
    @Serial
    private static final long serialVersionUID = 1L;

    private final int status;

    /**
     * Creates the exception.
     *
     * @param message what failed
     * @param status  the status byte the device wrote
     */
    public BlkIoException(String message, int status) {
        super(message + " (status " + status + ")");
        this.status = status;
    }

    /**
     * The status byte the device wrote.
     *
     * @return for example {@link BlkRequestLayout#VIRTIO_BLK_S_IOERR}
     */
    public int status() {
        return status;
    }
}
