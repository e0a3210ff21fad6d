package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.VmState;

import java.util.HashMap;
import java.util.Map;

/** A VM as the daemon knows it. */
final class DaemonVm {
    final VmId id;
    final VmSpec spec;
    final Credential credential;
    VmState state = VmState.CREATED;
    /** The pid bound at first attach, 0 before. */
    int pid;
    DaemonConnection connection;
    /** Every peer ever connected; revoked pairs stay as tombstones. */
    final Map<VmId, DaemonPair> pairs = new HashMap<>();
    /** Backend processes of this primary, by the secondary each serves. */
    final Map<VmId, DaemonBackend> backends = new HashMap<>();

    DaemonVm(VmId id, VmSpec spec, Credential credential) {
        this.id = id;
        this.spec = spec;
        this.credential = credential;
    }

    String describe() {
        return "vm '" + spec.name() + "'";
    }
}
