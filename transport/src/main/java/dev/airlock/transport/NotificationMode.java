package dev.airlock.transport;

/**
 * How a device learns that the driver made buffers available (VIRTIO 1.2 §2.7.10 and §2.7.13).
 *
 * @see DeviceHost#addDevice(TransportKind, dev.airlock.hypervisor.SharedRegionInfo, int, VirtioDeviceModel, NotificationMode)
 */
public enum NotificationMode {
    /**
     * The driver rings the queue's doorbell flag (unless the device suppressed notifications), and
     * the device host calls {@link VirtioDeviceModel#queueNotified} on its interrupt thread.
     */
    DOORBELL,
    /**
     * Once the device is active, a poller thread of its own (named {@code "airlock-poll-"}
     * and the device's name) watches the avail idx of every enabled queue and calls
     * {@link VirtioDeviceModel#queueNotified} when it moved. The device's available buffer
     * notifications stay suppressed ({@link dev.airlock.virtio.VirtqueueDevice#disableNotifications()},
     * and with {@code VIRTIO_F_EVENT_IDX} an {@code avail_event} parked behind {@code nextAvail}), so
     * the driver's {@link dev.airlock.virtio.VirtqueueDriver#kickPrepare()} returns false and it
     * rings no doorbell. Used buffer notifications are unchanged: the model still sends them when
     * {@link dev.airlock.virtio.VirtqueueDevice#needsInterrupt()} says so, and a polling driver
     * turns them off with {@link dev.airlock.virtio.VirtqueueDriver#disableCallbacks()}.
     *
     * <p>The poller and the interrupt thread never call the model at the same time: each call into
     * the model holds the device's lock. The poller spins while there is work, then backs off as its
     * {@link PollingPolicy} says; it is stopped and joined when the device resets, when the
     * driver's VM is gone, and when the host closes.
     */
    POLLING
}
