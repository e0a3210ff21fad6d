package dev.airlock.hypervisor;

/**
 * Settings that hold for every VM of one hypervisor.
 *
 * @param maxMessageBytes the largest message a queue accepts, 1 to {@value #MAX_MESSAGE_BYTES_LIMIT}
 */
public record HypervisorConfig(int maxMessageBytes) {
    /** The default largest message, as on the hypervisor the seed describes. */
    public static final int DEFAULT_MAX_MESSAGE_BYTES = 240;
    /** The largest value {@link #maxMessageBytes} may take. */
    public static final int MAX_MESSAGE_BYTES_LIMIT = 65_536;
    /** The defaults. */
    public static final HypervisorConfig DEFAULT = new HypervisorConfig(DEFAULT_MAX_MESSAGE_BYTES);

    /**
     * Checks the settings.
     *
     * @throws IllegalArgumentException if a setting is out of range
     */
    public HypervisorConfig {
        if (maxMessageBytes < 1 || maxMessageBytes > MAX_MESSAGE_BYTES_LIMIT) {
            throw new IllegalArgumentException("maxMessageBytes must be in [1, " + MAX_MESSAGE_BYTES_LIMIT + "]: " + maxMessageBytes);
        }
    }
}
