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
