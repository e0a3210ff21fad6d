package dev.airlock.transport;

import dev.airlock.virtio.VirtqueueDevice;

import java.util.List;

/**
 * A device backend as the transports see it: what a driver discovers, the configuration space, and
 * the queues it is given once the driver is ready. A model does not know which transport serves it.
 *
 * <p>Threading: the transport calls every method on one thread at a time, never concurrently: the
 * device host's interrupt thread, or in {@link NotificationMode#POLLING} also the device's poller
 * thread (serialised with the interrupt thread), or a vhost-user connection's threads. The model may call its {@link DeviceContext} from any
 * thread. Methods must not block for long: they hold up every device of the host.
 */
public interface VirtioDeviceModel {
    /**
     * The virtio device id (VIRTIO 1.2 §5), for example 2 for a block device.
     *
     * @return the id, not 0
     */
    int deviceId();

    /**
     * The features the device offers; must include {@code VIRTIO_F_VERSION_1}.
     *
     * @return the feature bits
     */
    long deviceFeatures();

    /**
     * Device-specific check of the driver's features when it sets FEATURES_OK. Only subsets of the
     * offered features reach it.
     *
     * @param driverFeatures the features the driver accepted
     * @return whether the combination is acceptable
     */
    default boolean acceptFeatures(long driverFeatures) {
        return true;
    }

    /**
     * How many virtqueues the device has, 1 to {@link DoorbellFlagsLayout#MAX_QUEUES}.
     *
     * @return the count
     */
    int queueCount();

    /**
     * The largest size the driver may give a queue (QueueNumMax).
     *
     * @param queue 0 to {@link #queueCount()} - 1
     * @return a power of two from 1 to 32768
     */
    int maxQueueSize(int queue);

    /**
     * The size of the device-specific configuration space.
     *
     * @return bytes, 0 to {@link ShmemHeaderLayout#CONFIG_LENGTH}
     */
    int configSizeBytes();

    /**
     * Reads the configuration space. Unlike the other methods this one may be called from any
     * thread, also while {@link DeviceContext#configChanged()} runs (shmem-doorbell copies the
     * space into its header then), so it must be thread-safe. The transport has checked that the access is 1, 2 or 4 bytes,
     * aligned to its size and inside {@link #configSizeBytes()}.
     *
     * @param offset    the offset in the configuration space
     * @param sizeBytes 1, 2 or 4
     * @return the value, little-endian, in the low {@code sizeBytes} bytes
     */
    long readConfig(int offset, int sizeBytes);

    /**
     * Writes the configuration space (bounds checked as for reads).
     *
     * @param offset    the offset
     * @param sizeBytes 1, 2 or 4
     * @param value     the value in the low bytes
     * @return whether the field is writable and the value was taken; false makes the transport
     *         answer {@link TransportStatus#REJECTED}
     */
    boolean writeConfig(int offset, int sizeBytes, long value);

    /**
     * The driver set DRIVER_OK: the device may now use its queues until {@link #reset()}.
     *
     * @param context            how to signal the driver
     * @param negotiatedFeatures the features in force
     * @param queues             one entry per queue; null for a queue the driver did not enable.
     *                           The queues check every descriptor the driver wrote.
     */
    void activate(DeviceContext context, long negotiatedFeatures, List<VirtqueueDevice> queues);

    /**
     * The driver sent an available buffer notification for an enabled queue of an active device.
     * A {@link dev.airlock.virtio.VirtioProtocolException} (or any runtime exception) thrown here
     * sets DEVICE_NEEDS_RESET; it does not escape the transport.
     *
     * @param queue the queue index
     */
    void queueNotified(int queue);

    /** The driver reset the device (or the driver's VM is gone): drop the queues, return to the initial state. */
    void reset();
}
