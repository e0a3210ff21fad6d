package dev.airlock.transport;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtqAvailLayout;
import dev.airlock.virtio.VirtqueueDevice;
import dev.airlock.virtio.Virtqueues;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The poller of one active device in {@link NotificationMode#POLLING}: a platform thread named
 * {@value #THREAD_NAME_PREFIX} plus the device's name. Each pass reads the avail idx of every
 * enabled, unbroken queue; where it moved since the last call for that queue, the poller takes the
 * device's lock, calls {@link DeviceCore#callModel} (the model's queueNotified) and suppresses the
 * queue's notifications again. When no queue had work it spins, then parks, as its
 * {@link PollingPolicy} says.
 *
 * <p><b>Suppression.</b> {@link VirtqueueDevice#disableNotifications()} (NO_NOTIFY, or with
 * EVENT_IDX {@code avail_event} parked half the index space ahead) is repeated after each model
 * call, which also undoes a model's own {@link VirtqueueDevice#enableNotifications()}; a kick in
 * between is harmless (the doorbell only wakes the poller).
 *
 * <p><b>Untrusted input.</b> The avail idx is only compared with the last value seen, to decide
 * whether to call the model; the model's {@link VirtqueueDevice#pop()} reads it again and checks it.
 * A driver that keeps moving it only keeps its own device's poller busy.
 *
 * <p><b>Threading.</b> {@link #start} and {@link #stop} run with the device's lock held (on the
 * interrupt thread, or the thread closing the host), so when {@link #stop} interrupts the thread it
 * is never inside the model: it is spinning, parked, or waiting for the lock, and each of those
 * ends on the interrupt. The avail idx is read without the lock; the rings stay mapped until the
 * device resets, which stops and joins the poller first.
 */
final class QueuePoller {
    /** The start of every poller thread's name. */
    static final String THREAD_NAME_PREFIX = "airlock-poll-";
    private static final RateLimitedLog LOG = new RateLimitedLog(QueuePoller.class);
    private static final long JOIN_TIMEOUT_MS = 10_000;
    /** A little-endian u16 at offset 0 of a two-byte slice: (MemorySegment, long) -> short. */
    private static final VarHandle U16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN).varHandle()
            .withInvokeExactBehavior();

    /** One watched queue; {@link #lastIdx} belongs to the poller thread (set before it starts). */
    private static final class Watched {
        final int index;
        final VirtqueueDevice queue;
        /** avail.idx: written by the driver, read here. */
        final MemorySegment availIdx;
        /** used.avail_event (EVENT_IDX only, else null): written by the device, read by the driver. */
        int lastIdx;

        Watched(int index, VirtqueueDevice queue, MemorySegment availIdx) {
            this.index = index;
            this.queue = queue;
            this.availIdx = availIdx;
            this.lastIdx = queue.nextAvail();
        }
    }

    private final DeviceCore core;
    private final ReentrantLock lock;
    private final PollingPolicy policy;
    private final Watched[] queues;
    private final Thread thread;
    private volatile boolean stopped;

    private QueuePoller(DeviceCore core, ReentrantLock lock, PollingPolicy policy, Watched[] queues) {
        this.core = core;
        this.lock = lock;
        this.policy = policy;
        this.queues = queues;
        this.thread = Thread.ofPlatform().daemon(true).name(THREAD_NAME_PREFIX + core.name()).unstarted(this::run);
    }

    /**
     * Suppresses the notifications of every enabled queue and starts polling them. Call with the
     * device's lock held, after the model was activated.
     *
     * @param queues     the device's queues, null where not enabled
     * @param availAddrs each queue's avail ring (QueueDriver), as the driver gave it
     * @param dmaView    the device's view, in which the queues were built (so these translate)
     */
    static QueuePoller start(DeviceCore core, ReentrantLock lock, PollingPolicy policy, VirtqueueDevice[] queues,
                             long[] availAddrs, GuestAddressSpace dmaView) {
        List<Watched> watched = new ArrayList<>();
        for (int q = 0; q < queues.length; q++) {
            VirtqueueDevice queue = queues[q];
            if (queue != null) {
                MemorySegment idx = dmaView.translate(availAddrs[q] + VirtqAvailLayout.IDX_OFFSET, Short.BYTES);
                watched.add(new Watched(q, queue, idx));
            }
        }
        QueuePoller poller = new QueuePoller(core, lock, policy, watched.toArray(new Watched[0]));
        for (Watched w : poller.queues) {
            suppress(w);
        }
        poller.thread.start();
        return poller;
    }

    /** The poller's thread (for tests and diagnostics). */
    Thread thread() {
        return thread;
    }

    /** Cuts a park short: the driver rang a doorbell although notifications are suppressed. */
    void wake() {
        LockSupport.unpark(thread);
    }

    /**
     * Stops the poller and waits for its thread to end. Call with the device's lock held; from the
     * poller's own thread (a model call that ends in a reset) it only marks the poller stopped.
     */
    void stop() {
        stopped = true;
        if (Thread.currentThread() == thread) {
            return;
        }
        thread.interrupt(); // ends a park or a wait for the lock; never a model call, since the caller holds the lock
        try {
            thread.join(JOIN_TIMEOUT_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (thread.isAlive()) {
            LOG.warn("device '" + core.name() + "': poller did not stop within " + JOIN_TIMEOUT_MS + " ms");
        }
    }

    private void run() {
        long idleSinceNs = System.nanoTime();
        long parkNs = 0;
        try {
            while (!stopped) {
                if (pass()) {
                    idleSinceNs = System.nanoTime();
                    parkNs = 0;
                } else if (System.nanoTime() - idleSinceNs < policy.spinIdleNs()) {
                    Thread.onSpinWait();
                } else {
                    parkNs = parkNs == 0 ? policy.minParkNs() : Math.min(parkNs * 2, policy.maxParkNs());
                    LockSupport.parkNanos(this, parkNs);
                }
            }
        } catch (InterruptedException e) {
            // stop(): the device is resetting or the host is closing.
        } catch (RuntimeException e) {
            // Only reading a ring can throw here (the model's exceptions become faults in callModel),
            // and the rings stay mapped until a reset, which stops this thread first (the region of a
            // driver VM that died is unmapped after its PEER_GONE handler, which resets the device).
            // Should it happen anyway, the driver is told rather than left waiting for a poll.
            if (!stopped) {
                LOG.warn("device '" + core.name() + "': poller ends on " + e);
                try {
                    core.reportFault(new VirtioFault(core.name(), "poller", 0, "poller failed: " + e));
                } catch (RuntimeException ignored) {
                    // The region is gone with the driver's VM; its PEER_GONE resets the device.
                }
            }
        }
    }

    /** One pass over the queues; returns whether any had work. */
    private boolean pass() throws InterruptedException {
        boolean worked = false;
        for (Watched w : queues) {
            if (w.queue.isBroken()) {
                continue; // the device needs a reset; the model would only throw again
            }
            // Pairs with the driver's setRelease of avail.idx; only a change detector, the model's pop re-reads and checks it.
            int idx = (short) U16.getAcquire(w.availIdx, 0L) & Virtqueues.IDX_MASK;
            if (idx == w.lastIdx) {
                continue;
            }
            lock.lockInterruptibly();
            try {
                if (stopped) {
                    return false;
                }
                w.lastIdx = idx;
                core.callModel(w.index);
                if (!w.queue.isBroken()) {
                    suppress(w);
                }
            } finally {
                lock.unlock();
            }
            worked = true;
        }
        return worked;
    }

    /** Asks the driver not to kick this queue (see the class comment); a hint, as every suppression. */
    private static void suppress(Watched w) {
        w.queue.disableNotifications();
    }

    /** For log lines. */
    @Override
    public String toString() {
        return "QueuePoller(" + core.name() + ", " + queues.length + " queues" + (stopped ? ", stopped" : "") + ", "
                + TimeUnit.NANOSECONDS.toMicros(policy.maxParkNs()) + " us max park)";
    }
}
