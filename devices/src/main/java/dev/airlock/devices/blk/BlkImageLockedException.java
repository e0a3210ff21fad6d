package dev.airlock.devices.blk;

import java.io.IOException;
import java.io.Serial;
import java.nio.file.Path;

/** Another backend (in this process or another) already serves the image in a conflicting mode. */
public final class BlkImageLockedException extends IOException {
    @Serial
    private static final long serialVersionUID = 1L;

    /** The image, kept as text so the exception stays serializable. */
    private final String image;

    /**
     * Creates the exception.
     *
     * @param image    the image file
     * @param readOnly whether this backend wanted to serve it read-only
     */
    public BlkImageLockedException(Path image, boolean readOnly) {
        super("image " + image + " is locked by another backend" + (readOnly
                ? " serving it read-write; it cannot be served read-only at the same time"
                : "; it cannot be served read-write by two backends"));
        this.image = image.toString();
    }

    /**
     * The image file.
     *
     * @return its path
     */
    public Path image() {
        return Path.of(image);
    }
}
