package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.VmId;

/**
 * A backend process: part of a primary, serving one secondary. It attaches with its own
 * credential, receives only the grants between the primary and that secondary (which then
 * never reach the primary's own process), and may reach only that secondary.
 *
 * <p>Its life: assigned (a credential, no process yet), attached (bound to the pid that presented
 * the credential), died (its connection ended). A dead backend keeps its pair: the grants stay for
 * the replacement that a later {@code assignBackend} issues a fresh credential for; the dead one's
 * credential is forgotten with it.
 */
final class DaemonBackend {
    final DaemonVm primary;
    final VmId secondary;
    final Credential credential;
    /** Whether this backend replaces one that died (messages sent while none was attached are dropped on attach). */
    final boolean replacement;
    int pid;
    DaemonConnection connection;
    /** Set when its connection ended after it had attached; it never attaches again. */
    boolean died;

    DaemonBackend(DaemonVm primary, VmId secondary, Credential credential, boolean replacement) {
        this.primary = primary;
        this.secondary = secondary;
        this.credential = credential;
        this.replacement = replacement;
    }
}
