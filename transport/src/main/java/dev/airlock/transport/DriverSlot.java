package dev.airlock.transport;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;

import java.util.function.BooleanSupplier;

/**
 * What the two driver transports share: the slot's identity, the interrupt dispatch from the
 * driver host, the bounded wait for the device, and the broken state.
 */
abstract class DriverSlot implements DriverTransport {
    final VmContext vm;
    final VmId peer;
    final int slot;
    final SharedRegionMapping region;
    final String name;
    final long timeoutNs;
    final DriverHost host;
    /** Waiters for a device answer wait on this monitor; the interrupt thread notifies it. */
    final Object answered = new Object();
    private volatile Listener listener;
    private volatile String brokenReason;

    DriverSlot(DriverHost host, VmContext vm, SharedRegionMapping region, int slot, long timeoutNs) {
        this.host = host;
        this.vm = vm;
        this.peer = region.peer();
        this.slot = slot;
        this.region = region;
        this.timeoutNs = timeoutNs;
        this.name = vm.name() + "/" + region.name() + ".slot" + slot;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public SharedRegionMapping region() {
        return region;
    }

    @Override
    public void setListener(Listener listener) {
        this.listener = listener;
    }

    @Override
    public boolean isBroken() {
        return brokenReason != null;
    }

    /** Breaks the transport (first reason kept) and wakes every waiter. */
    final void markBroken(String reason) {
        if (brokenReason == null) {
            brokenReason = reason;
            Listener l = listener;
            if (l != null) {
                l.onBroken();
            }
        }
        synchronized (answered) {
            answered.notifyAll();
        }
    }

    final void checkNotBroken() {
        String reason = brokenReason;
        if (reason != null) {
            throw new TransportException(name + ": transport broken: " + reason);
        }
    }

    /**
     * Waits until {@code done} holds, at most the timeout; the interrupt thread notifies
     * {@link #answered}. On timeout the transport breaks.
     */
    final void await(BooleanSupplier done, String what) {
        long deadline = System.nanoTime() + timeoutNs;
        synchronized (answered) {
            while (!done.getAsBoolean()) {
                checkNotBroken();
                long remainingNs = deadline - System.nanoTime();
                if (remainingNs <= 0) {
                    markBroken("no answer to " + what + " within " + timeoutNs / 1_000_000 + " ms");
                    checkNotBroken();
                }
                try {
                    // Bounded waits also catch an answer whose interrupt raced with this wait.
                    answered.wait(Math.max(1, Math.min(remainingNs / 1_000_000, 10)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    markBroken("interrupted while waiting for " + what);
                    checkNotBroken();
                }
            }
        }
    }

    final void wakeWaiters() {
        synchronized (answered) {
            answered.notifyAll();
        }
    }

    /** Rings one flag of this slot on the device's doorbell. */
    final void ring(long flag) {
        checkNotBroken();
        try {
            vm.ringDoorbell(peer, flag);
        } catch (HypervisorRefusedException e) {
            markBroken("device VM unreachable: " + e.getMessage());
            checkNotBroken();
        }
    }

    @Override
    public void notifyQueue(int queue) {
        ring(DoorbellFlagsLayout.queueNotifyFlag(slot, queue));
    }

    /** The device's doorbell bits for this slot, on the interrupt thread. */
    void onDoorbell(int bits) {
        if ((bits & (1 << DoorbellFlagsLayout.CONTROL_ACK_BIT)) != 0) {
            wakeWaiters();
        }
        Listener l = listener;
        if (l == null) {
            return;
        }
        if ((bits & (1 << DoorbellFlagsLayout.CONFIG_CHANGE_BIT)) != 0) {
            l.onConfigChange();
        }
        if ((bits & (1 << DoorbellFlagsLayout.USED_BUFFER_BIT)) != 0) {
            l.onUsedBuffers();
        }
    }

    /** Checks a configuration access on the driver's side (a programming error otherwise). */
    static void checkConfigAccess(int offset, int sizeBytes) {
        if ((sizeBytes != 1 && sizeBytes != 2 && sizeBytes != 4) || offset < 0 || (offset & (sizeBytes - 1)) != 0) {
            throw new IllegalArgumentException("config access of " + sizeBytes + " bytes at " + offset);
        }
    }

    @Override
    public void close() {
        host.detach(this);
        markBroken("closed");
    }

    @Override
    public String toString() {
        return getClass().getSimpleName() + "(" + name + (isBroken() ? ", broken" : "") + ")";
    }
}
