package dev.airlock.transport;

/**
 * The result codes a device returns for a register access (msgq-mmio response) or a header request
 * (shmem-doorbell acknowledgement).
 */
public final class TransportStatus {
    /** The access was performed. */
    public static final int OK = 0;
    /** No register or config field at that offset, or the access is misaligned. */
    public static final int BAD_OFFSET = 1;
    /** An access size other than 1, 2 or 4 bytes, or not 4 for a register. */
    public static final int BAD_SIZE = 2;
    /** A write to a read-only register: ignored (VIRTIO 1.2 §4.2.2.1). */
    public static final int READ_ONLY = 3;
    /** A read of a write-only register: answered with 0. */
    public static final int WRITE_ONLY = 4;
    /** The value or the moment was refused (status rule, queue set-up, feature window, unknown queue). */
    public static final int REJECTED = 5;
    /** No device in that slot. */
    public static final int NO_SUCH_SLOT = 6;
    /** The message or request could not be decoded. */
    public static final int MALFORMED = 7;

    private TransportStatus() {
    }

    /**
     * Names a status code.
     *
     * @param status the code
     * @return its name, or the number if unknown
     */
    public static String describe(int status) {
        return switch (status) {
            case OK -> "OK";
            case BAD_OFFSET -> "BAD_OFFSET";
            case BAD_SIZE -> "BAD_SIZE";
            case READ_ONLY -> "READ_ONLY";
            case WRITE_ONLY -> "WRITE_ONLY";
            case REJECTED -> "REJECTED";
            case NO_SUCH_SLOT -> "NO_SUCH_SLOT";
            case MALFORMED -> "MALFORMED";
            default -> "UNKNOWN(" + Integer.toUnsignedString(status) + ")";
        };
    }
}
