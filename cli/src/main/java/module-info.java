/** The {@code airlock} command line. */
module dev.airlock.cli {
    requires dev.airlock.virtio;
    requires dev.airlock.hypervisor;
    requires dev.airlock.devices;
    requires dev.airlock.vhostuser;
    requires dev.airlock.bench;
    requires info.picocli;

    opens dev.airlock.cli to info.picocli;
}
