package dev.airlock.transport;

import java.io.InterruptedIOException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * What a blocking driver needs from its device's interrupts: it becomes the {@link VirtioFrontend}'s
 * listener and turns every interrupt into an epoch a waiting thread can compare against, and it
 * remembers that the backend detached until the driver has initialised the device again.
 *
 * <p>The pattern: read {@link #usedEpoch()}, look at the queues, and if there is nothing to do,
 * {@link #await} that epoch; a used-buffer interrupt, a configuration change, a detach, a reattach or
 * {@link #close()} ends the wait. {@link #configEpoch()} moves only on configuration changes,
 * detaches and reattaches, the moments to re-read the status.
 *
 * <p>A detach ({@link VirtioFrontend.Listener#onBroken()} while the transport is not broken for good) sets
 * {@link #detachSeen()}, and it stays set even if a new backend attached before the driver looked:
 * the device it finds then is in reset state and must be initialised again. The driver clears it
 * with {@link #clearDetach()} when it starts doing so.
 */
public final class DriverSignals {
    /** The longest single wait: a safety net only, every event is signalled. */
    private static final long MAX_WAIT_MS = 1_000;

    private final String device;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition signalled = lock.newCondition();
    private volatile long usedEpoch;   // written under lock, read without it
    private volatile long configEpoch; // written under lock, read without it
    private volatile boolean detachSeen;
    private volatile boolean closed;

    /**
     * Becomes {@code frontend}'s listener (call before initialising the device).
     *
     * @param frontend the device's frontend
     * @param device   what the device is, for messages: "the console device", say
     */
    public DriverSignals(VirtioFrontend frontend, String device) {
        this.device = device;
        frontend.setListener(new VirtioFrontend.Listener() {
            @Override
            public void onUsedBuffers() {
                signal(false);
            }

            @Override
            public void onConfigChange() {
                signal(true);
            }

            @Override
            public void onBroken() {
                if (!frontend.transport().isBroken()) {
                    detachSeen = true; // not broken for good, so the backend detached (it may even be back already)
                }
                signal(true);
            }

            @Override
            public void onReattached() {
                signal(true);
            }
        });
    }

    private void signal(boolean config) {
        lock.lock();
        try {
            usedEpoch++;
            if (config) {
                configEpoch++;
            }
            signalled.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * The count of all signals, to pass to {@link #await} after looking at the queues.
     *
     * @return the epoch
     */
    public long usedEpoch() {
        return usedEpoch;
    }

    /**
     * The count of configuration changes, detaches and reattaches.
     *
     * @return the epoch
     */
    public long configEpoch() {
        return configEpoch;
    }

    /**
     * Waits for a signal after {@code seen} (or {@link #close()}), at most a second.
     *
     * @param seen what {@link #usedEpoch()} returned before the caller looked at the queues
     * @throws InterruptedIOException if the thread is interrupted (its interrupt status is kept)
     */
    public void await(long seen) throws InterruptedIOException {
        lock.lock();
        try {
            while (usedEpoch == seen && !closed) {
                if (!signalled.await(MAX_WAIT_MS, TimeUnit.MILLISECONDS)) {
                    break;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted waiting for " + device);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Whether the backend detached since the driver last initialised the device.
     *
     * @return whether the device must be initialised again before use
     */
    public boolean detachSeen() {
        return detachSeen;
    }

    /** Notes a detach the driver found itself (an operation failed on a detached transport). */
    public void markDetached() {
        detachSeen = true;
    }

    /** The driver starts initialising the device again: a detach from here on is seen anew. */
    public void clearDetach() {
        detachSeen = false;
    }

    /** Ends every wait, now and later; the listener stays (the frontend outlives this). */
    public void close() {
        closed = true;
        signal(false);
    }
}
