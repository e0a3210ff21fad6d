package dev.airlock.transport;

import dev.airlock.hypervisor.SharedRegionMapping;

/**
 * The driver side of one device on one transport: what the generic {@link VirtioFrontend} needs
 * and nothing transport-specific. Operations that talk to the device block the calling thread
 * until it answers, at most the host's timeout; a device that does not answer in time breaks the
 * transport ({@link #isBroken()}) and the call throws {@link TransportException}.
 *
 * <p>On the multi-process runtime the device's backend process may die and be replaced while its
 * VM (the primary) lives on. Between the two the transport is {@link #isDetached() detached}: every
 * operation, including one already waiting, throws {@link TransportException} at once, and the
 * listener hears {@link Listener#onBroken()}. When a new backend attaches, the same transport works
 * again against a device in reset state ({@link Listener#onReattached()}): the driver resets and
 * initialises it again and resubmits what was lost. A timeout while attached still breaks it for good.
 *
 * <p>Every value read from the device is untrusted; callers check what they use.
 */
public interface DriverTransport extends AutoCloseable {
    /** Interrupts from the device. Called on the secondary's interrupt thread: do not block, do not make transport calls. */
    interface Listener {
        /** The device signalled used buffers on some queue. */
        void onUsedBuffers();

        /** The device's configuration changed, or it set DEVICE_NEEDS_RESET. */
        void onConfigChange();

        /**
         * The transport broke (the device timed out, or its VM is gone) or the device's backend
         * process detached ({@link #isDetached()}): either way, nothing in flight will complete.
         */
        default void onBroken() {
        }

        /**
         * A new backend process attached after the transport was {@link #isDetached() detached}:
         * the transport works again and the device is in its reset state, so the driver initialises it
         * again (on its own thread, not here).
         */
        default void onReattached() {
        }
    }

    /**
     * The transport.
     *
     * @return its kind
     */
    TransportKind kind();

    /**
     * The device, for messages.
     *
     * @return a name such as {@code "guest1/guest1.echo0.slot0"}
     */
    String name();

    /**
     * Checks the device's identification (MagicValue and Version, or the header's magic and version).
     *
     * @return the device id (0 means no device)
     * @throws TransportException if the device is not a virtio device of the expected version
     */
    int probe();

    /**
     * The features the device offers.
     *
     * @return all 64 bits
     */
    long deviceFeatures();

    /**
     * Writes the features the driver accepts.
     *
     * @param features the bits
     * @throws TransportException if the device refused the write
     */
    void writeDriverFeatures(long features);

    /**
     * Reads the status.
     *
     * @return the status byte
     */
    int status();

    /**
     * Writes the status. A refused write is not an error here: the driver re-reads the status.
     *
     * @param status the new value; 0 resets the device
     */
    void writeStatus(int status);

    /**
     * The largest size of a queue.
     *
     * @param queue the index
     * @return QueueNumMax, 0 if the queue does not exist
     */
    int queueNumMax(int queue);

    /**
     * Gives the device a queue's size and ring addresses (DMA addresses in the shared region) and
     * enables it.
     *
     * @param queue     the index
     * @param size      the size, a power of two up to {@link #queueNumMax}
     * @param descAddr  the descriptor table
     * @param availAddr the available (driver) ring
     * @param usedAddr  the used (device) ring
     * @return whether the device accepted the queue
     */
    boolean enableQueue(int queue, int size, long descAddr, long availAddr, long usedAddr);

    /**
     * The configuration generation: equal before and after a sequence of configuration reads
     * means they saw a consistent space (VIRTIO 1.2 §2.5.1).
     *
     * @return the generation
     */
    int configGeneration();

    /**
     * Reads configuration space.
     *
     * @param offset    the offset
     * @param sizeBytes 1, 2 or 4, the offset aligned to it
     * @return the value in the low bytes
     * @throws TransportException if the device refused the access
     */
    long readConfig(int offset, int sizeBytes);

    /**
     * Writes configuration space.
     *
     * @param offset    the offset
     * @param sizeBytes 1, 2 or 4
     * @param value     the value in the low bytes
     * @throws TransportException if the device refused the access
     */
    void writeConfig(int offset, int sizeBytes, long value);

    /**
     * Sends an available buffer notification: rings the queue's doorbell flag. Never blocks.
     *
     * @param queue the index
     */
    void notifyQueue(int queue);

    /**
     * Sets who hears the device's interrupts.
     *
     * @param listener the listener, or null
     */
    void setListener(Listener listener);

    /**
     * The device's shared region, as this VM sees it.
     *
     * @return the mapping
     */
    SharedRegionMapping region();

    /**
     * Where in the region the driver may put vrings and the bounce pool: after the header for
     * shmem-doorbell, from 0 for msgq-mmio.
     *
     * @return the offset in bytes
     */
    long dmaOffset();

    /**
     * Whether the transport broke (a timeout, the device's VM gone, closed).
     *
     * @return whether broken
     */
    boolean isBroken();

    /**
     * Whether the device's backend process is gone and no replacement has attached yet: operations
     * fail fast until one does. False once broken.
     *
     * @return whether detached
     */
    default boolean isDetached() {
        return false;
    }

    /** Detaches from the host; the slot can be opened again. Does not reset the device. */
    @Override
    void close();
}
