/**
 * vhost-user (QEMU docs/interop/vhost-user.rst): the backend side, which serves Airlock's device
 * models to a VMM over a Unix socket, and the frontend side.
 */
module dev.airlock.vhostuser {
    requires transitive dev.airlock.devices;

    exports dev.airlock.vhostuser;
}
