package dev.airlock.transport;

import dev.airlock.virtio.VirtioFault;

/**
 * What an active device may ask of its transport. Every method may be called from any thread and
 * never blocks.
 */
public interface DeviceContext {
    /**
     * The device, for fault records and log lines: {@code "host/guest1.slot0"}.
     *
     * @return the name
     */
    String name();

    /**
     * How the driver's available buffer notifications reach the device. In
     * {@link NotificationMode#POLLING} the transport keeps them suppressed and calls
     * {@link VirtioDeviceModel#queueNotified} from the device's poller thread, so a model need not
     * re-enable notifications after it drains a queue. If it does (a model written for doorbells),
     * the transport suppresses them again when queueNotified returns; a kick the driver sends in
     * between only wakes the poller.
     *
     * @return the mode
     */
    default NotificationMode notificationMode() {
        return NotificationMode.DOORBELL;
    }

    /**
     * Sends the driver a used buffer notification (VIRTIO 1.2 §2.7.7); call when
     * {@link dev.airlock.virtio.VirtqueueDevice#needsInterrupt()} says so.
     *
     * @param queue the queue whose used ring moved
     */
    void signalUsedBuffers(int queue);

    /**
     * The device changed its configuration space: bumps the configuration generation and sends a
     * configuration change notification (§2.5.1). Call after the change is visible through
     * {@link VirtioDeviceModel#readConfig}, and without holding a lock that readConfig takes
     * (shmem-doorbell calls readConfig from here, under its own header lock).
     */
    void configChanged();

    /**
     * The device hit an error it cannot recover from without a reset (a guest protocol violation):
     * sets DEVICE_NEEDS_RESET and notifies the driver (§2.1.2).
     *
     * @param fault what went wrong
     */
    void reportFault(VirtioFault fault);
}
