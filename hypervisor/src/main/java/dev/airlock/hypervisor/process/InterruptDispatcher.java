package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.InterruptCause;
import dev.airlock.hypervisor.VmId;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * A VM process's interrupt thread ({@code airlock-vm-NAME-irq}): causes raised per peer coalesce in
 * a pending word until the thread takes them, and are delivered only while the VM runs (held while
 * it is created or stopped), one peer's causes at a time, in the order the peers were raised.
 */
final class InterruptDispatcher {
    /** Delivers the pending causes about one peer; runs on the interrupt thread. */
    interface Delivery {
        void deliver(VmId peer, int causes);
    }

    private final Object lock = new Object();
    /** Guarded by {@code lock}. */
    private final LinkedHashMap<VmId, Integer> pending = new LinkedHashMap<>();
    /** Guarded by {@code lock}. */
    private boolean stopped;
    private final BooleanSupplier running;
    private final Delivery delivery;
    private final Thread thread;

    InterruptDispatcher(String threadName, BooleanSupplier running, Delivery delivery) {
        this.running = running;
        this.delivery = delivery;
        this.thread = new Thread(this::run, threadName);
        thread.setDaemon(true);
    }

    static int bit(InterruptCause cause) {
        return 1 << cause.ordinal();
    }

    void start() {
        thread.start();
    }

    Thread thread() {
        return thread;
    }

    void raise(VmId peer, InterruptCause cause) {
        synchronized (lock) {
            pending.merge(peer, bit(cause), (a, b) -> a | b);
            lock.notifyAll();
        }
    }

    /** Re-checks whether delivery may proceed (after a state change). */
    void wake() {
        synchronized (lock) {
            lock.notifyAll();
        }
    }

    void stop() {
        synchronized (lock) {
            stopped = true;
            lock.notifyAll();
        }
    }

    private void run() {
        while (true) {
            VmId peer;
            int causes;
            synchronized (lock) {
                while (!stopped && (pending.isEmpty() || !running.getAsBoolean())) {
                    try {
                        lock.wait();
                    } catch (InterruptedException e) {
                        // nothing interrupts this thread on purpose; keep waiting
                    }
                }
                if (stopped) {
                    return;
                }
                Iterator<Map.Entry<VmId, Integer>> first = pending.entrySet().iterator();
                Map.Entry<VmId, Integer> entry = first.next();
                first.remove();
                peer = entry.getKey();
                causes = entry.getValue();
            }
            delivery.deliver(peer, causes);
        }
    }
}
