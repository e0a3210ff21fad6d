package dev.airlock.memory;

import java.io.Serial;

/**
 * A guest-physical range {@code [gpa, gpa + length)} does not lie inside a single region of an
 * address space (it is unmapped, straddles two regions, or wraps around 2^64).
 */
public final class UnmappedAddressException extends GuestMemoryException {
    @Serial
    private static final long serialVersionUID = 1L;

    private final long gpa;
    private final long lengthBytes;
    private final String spaceName;

    /**
     * Creates the exception.
     *
     * @param spaceName   the address space that was asked
     * @param gpa         the first guest-physical address of the range
     * @param lengthBytes the length of the range
     * @param reason      why it failed, for example "not inside one region"
     */
    public UnmappedAddressException(String spaceName, long gpa, long lengthBytes, String reason) {
        super("guest range [0x" + Long.toHexString(gpa) + ", +" + Long.toUnsignedString(lengthBytes) + ") in address space '"
                + spaceName + "': " + reason);
        this.gpa = gpa;
        this.lengthBytes = lengthBytes;
        this.spaceName = spaceName;
    }

    /**
     * The first address of the rejected range.
     *
     * @return the guest-physical address
     */
    public long gpa() {
        return gpa;
    }

    /**
     * The length of the rejected range.
     *
     * @return the length in bytes (unsigned)
     */
    public long lengthBytes() {
        return lengthBytes;
    }

    /**
     * The address space that rejected it.
     *
     * @return its name
     */
    public String spaceName() {
        return spaceName;
    }
}
