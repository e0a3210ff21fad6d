package dev.airlock.transport;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;

/**
 * One device of a device host, in one slot of one secondary: the core plus the wire side of its
 * transport. Runs on the device host's interrupt thread, except {@link #ring}, which the device's
 * context may call from any thread.
 */
abstract class DeviceSlot implements DeviceCore.Signals {
    final VmContext vm;
    final VmId peer;
    final int slot;
    final DeviceCore core;

    DeviceSlot(VmContext vm, VmId peer, int slot, DeviceCore core) {
        this.vm = vm;
        this.peer = peer;
        this.slot = slot;
        this.core = core;
    }

    abstract TransportKind kind();

    /** Handles the doorbell bits of this slot (already read and cleared). */
    abstract void onDoorbell(int bits);

    /** Notifies each queue whose bit is set. */
    final void notifyQueues(int bits) {
        for (int q = 0; q < DoorbellFlagsLayout.MAX_QUEUES; q++) {
            if ((bits & (1 << q)) != 0) {
                core.queueNotified(q);
            }
        }
    }

    @Override
    public void ring(int bit) {
        try {
            vm.ringDoorbell(peer, DoorbellFlagsLayout.flag(slot, bit));
        } catch (HypervisorRefusedException e) {
            // The driver's VM is gone or not running; its PEER_GONE resets the device.
        }
    }
}
