package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.VmId;

/**
 * A backend process: part of a primary, serving one secondary. It attaches with its own
 * credential, receives only the grants between the primary and that secondary (which then
 * never reach the primary's own process), and may reach only that secondary.
 */
final class DaemonBackend {
    final DaemonVm primary;
    final VmId secondary;
    final Credential credential;
    int pid;
    DaemonConnection connection;

    DaemonBackend(DaemonVm primary, VmId secondary, Credential credential) {
        this.primary = primary;
        this.secondary = secondary;
        this.credential = credential;
    }
}
