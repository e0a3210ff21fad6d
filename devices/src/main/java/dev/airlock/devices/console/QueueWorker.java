package dev.airlock.devices.console;

import dev.airlock.transport.DeviceContext;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioProtocolException;
import dev.airlock.virtio.VirtqueueDevice;

import java.util.concurrent.CountDownLatch;

/**
 * The one thread that owns a virtqueue of an active console device (the queue classes are not
 * thread-safe). The transport's interrupt thread only {@link #wake}s it; {@link #stop} interrupts
 * it and waits until it has left the ring code. A worker blocks only on interruptible waits (for a
 * wake-up or ring space), never on endpoint I/O, so a reset never waits for I/O.
 *
 * <p>A guest protocol violation ends the worker: it marks the queue broken and reports the fault
 * (DEVICE_NEEDS_RESET). The report runs after the worker released the rings and only if no reset
 * has begun: reportFault takes the status machine's lock, which a resetting thread holds while it
 * waits in {@link #stop}, so {@link #stop} must not wait for the report.
 */
abstract class QueueWorker implements Runnable {
    final DeviceContext context;
    final VirtqueueDevice queue;
    final int index;
    final ConsoleMetrics metrics;
    private final Thread thread;
    private final CountDownLatch ringsReleased = new CountDownLatch(1);
    private final Object wakeLock = new Object();
    private boolean woken; // guarded by wakeLock
    private volatile boolean stopped;

    QueueWorker(String role, DeviceContext context, VirtqueueDevice queue, int index, ConsoleMetrics metrics) {
        this.context = context;
        this.queue = queue;
        this.index = index;
        this.metrics = metrics;
        this.thread = Thread.ofPlatform().daemon().name("console " + role + " " + context.name()).unstarted(this);
    }

    final void start() {
        thread.start();
    }

    /** From any thread: there may be work (a queue notification, input, space). */
    final void wake() {
        synchronized (wakeLock) {
            woken = true;
            wakeLock.notifyAll();
        }
    }

    final boolean stopped() {
        return stopped;
    }

    /** Stops the worker; returns once it no longer touches the queue. */
    final void stop() {
        stopped = true;
        thread.interrupt();
        boolean interrupted = false;
        while (true) {
            try {
                ringsReleased.await();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public final void run() {
        VirtioFault fault = null;
        try {
            serve();
        } catch (InterruptedException e) {
            // stopped by reset
        } catch (VirtioProtocolException e) {
            fault = e.fault();
        } catch (RuntimeException e) {
            fault = new VirtioFault(queue.name(), "queue[" + index + "]", 0, "console device failed: " + e);
        } finally {
            ringsReleased.countDown();
        }
        if (fault != null && !stopped) {
            queue.markBroken(fault);
            metrics.recordFault();
            context.reportFault(fault);
        }
    }

    /** Serves the queue until stopped; throws on a protocol violation. */
    abstract void serve() throws InterruptedException;

    /** Forgets earlier wake-ups: call before looking for work, so none that follows is lost. */
    final void clearWake() {
        synchronized (wakeLock) {
            woken = false;
        }
    }

    /**
     * Re-enables notifications and, unless work arrived meanwhile, waits for a wake-up; then turns
     * notifications off again while working.
     */
    final void idle() throws InterruptedException {
        if (stopped) {
            throw new InterruptedException("stopped");
        }
        if (queue.enableNotifications()) {
            synchronized (wakeLock) {
                while (!woken && !stopped) {
                    wakeLock.wait();
                }
            }
        }
        queue.disableNotifications();
    }

    /** Publishes used entries and notifies the driver if the ring asks for it. */
    final void publish() {
        queue.publishUsed();
        if (queue.needsInterrupt() && !stopped) {
            context.signalUsedBuffers(index);
        }
    }
}
