package dev.airlock.transport;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;

import java.util.function.BooleanSupplier;

/**
 * What the two driver transports share: the slot's identity, the interrupt dispatch from the
 * driver host, the bounded wait for the device, and its states: working, detached (the backend
 * process serving the device died: every call fails fast until a new backend attaches, then the
 * device is fresh, in reset state) and broken (for good: a timeout, the device's VM gone, closed).
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
    /** Non-null while the device's backend is detached; written on the interrupt thread. */
    private volatile String detachedReason;
    /** Counts detaches: an operation begun in one device session fails if it ends in another. */
    private volatile int session;

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

    @Override
    public boolean isDetached() {
        return detachedReason != null && brokenReason == null;
    }

    /**
     * The device's backend went away (on the interrupt thread): calls fail fast from now on, waiters
     * wake and throw, the listener hears {@code onBroken}. Nothing happens to a broken transport.
     */
    final void markDetached(String reason) {
        if (brokenReason != null) {
            return;
        }
        detachedReason = reason;
        session++; // written on the interrupt thread, or by open() before anyone has the transport
        onDetached();
        Listener l = listener;
        if (l != null) {
            l.onBroken();
        }
        wakeWaiters();
    }

    /**
     * A new backend attached (on the interrupt thread): a detached transport works again, talking to
     * a device in reset state, and the listener hears {@code onReattached}.
     */
    final void markAttached() {
        if (detachedReason == null || brokenReason != null) {
            return; // never detached (a first attach), or broken for good
        }
        onReattached();
        detachedReason = null;
        Listener l = listener;
        if (l != null) {
            l.onReattached();
        }
    }

    /** Forgets what was outstanding with the device that went away; on the interrupt thread. */
    void onDetached() {
    }

    /** Prepares for a new device session; on the interrupt thread, before calls are let through. */
    void onReattached() {
    }

    /** Throws if the transport is broken or its backend is detached. */
    final void checkNotBroken() {
        String reason = brokenReason;
        if (reason != null) {
            throw new TransportException(name + ": transport broken: " + reason);
        }
        String detached = detachedReason;
        if (detached != null) {
            throw new TransportException(name + ": the device's backend is gone (" + detached
                    + "); the device can be initialised again once a new backend attaches");
        }
    }

    /**
     * Checks the transport works and starts an operation with the device.
     *
     * @return the device session, for {@link #await}
     * @throws TransportException if broken or detached
     */
    final int begin() {
        int current = session;
        checkNotBroken();
        return current;
    }

    /**
     * Waits until {@code done} holds, at most the timeout; the interrupt thread notifies
     * {@link #answered}. On timeout the transport breaks; if the backend detaches meanwhile (even if
     * a new one attached since), throws at once.
     */
    final void await(BooleanSupplier done, String what, int started) {
        if (!awaitUntil(done, System.nanoTime() + timeoutNs, what, started)) {
            markBroken("no answer to " + what + " within " + timeoutNs / 1_000_000 + " ms");
            checkNotBroken();
        }
    }

    /**
     * Waits until {@code done} holds or {@code deadlineNs} ({@link System#nanoTime()}) passes.
     *
     * @return whether {@code done} holds; false at the deadline (the transport is left as it is)
     * @throws TransportException if the transport breaks or the device session {@code started} ends meanwhile
     */
    final boolean awaitUntil(BooleanSupplier done, long deadlineNs, String what, int started) {
        synchronized (answered) {
            while (!done.getAsBoolean()) {
                checkNotBroken();
                if (session != started) {
                    throw new TransportException(name + ": the device's backend went away during " + what);
                }
                long remainingNs = deadlineNs - System.nanoTime();
                if (remainingNs <= 0) {
                    return false;
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
            return true;
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
        return getClass().getSimpleName() + "(" + name + (isBroken() ? ", broken" : isDetached() ? ", detached" : "") + ")";
    }
}
