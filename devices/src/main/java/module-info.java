/**
 * virtio devices, one package per device type, each with the backend (a
 * {@link dev.airlock.transport.VirtioDeviceModel}), the frontend driver (over a
 * {@link dev.airlock.transport.VirtioFrontend}), the request parser and the configuration layout.
 */
module dev.airlock.devices {
    requires transitive dev.airlock.transport;

    exports dev.airlock.devices.blk;
    exports dev.airlock.devices.console;
    exports dev.airlock.devices.rng;
}
