/**
 * virtio transports over the hypervisor's primitives: msgq-mmio (virtio-mmio registers carried as
 * messages) and shmem-doorbell (a header in the shared region plus doorbells). Devices implement
 * {@link dev.airlock.transport.VirtioDeviceModel} and run on either; drivers use
 * {@link dev.airlock.transport.VirtioFrontend} over a {@link dev.airlock.transport.DriverTransport}.
 */
module dev.airlock.transport {
    requires transitive dev.airlock.virtio;
    requires transitive dev.airlock.hypervisor;

    exports dev.airlock.transport;
}
