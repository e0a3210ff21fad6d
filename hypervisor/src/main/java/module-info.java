/**
 * The hypervisor model: VMs with private RAM, shared regions granted to a primary/secondary pair,
 * message queues and doorbells between them, every call checked against the caller's identity.
 * One control-plane interface ({@link dev.airlock.hypervisor.Hypervisor}) and one per-VM hypercall
 * interface ({@link dev.airlock.hypervisor.VmContext}), with an in-process runtime behind them
 * ({@link dev.airlock.hypervisor.InProcessHypervisor}). The hypervisor knows nothing of virtio.
 */
module dev.airlock.hypervisor {
    requires transitive dev.airlock.memory;

    exports dev.airlock.hypervisor;
    exports dev.airlock.hypervisor.process;
}
