package dev.airlock.devices.rng;

import dev.airlock.transport.DeviceContext;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtioProtocolException;
import dev.airlock.virtio.VirtqueueDevice;

import java.util.List;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;

/**
 * The entropy device backend (VIRTIO 1.2 §5.4, device id 4): one requestq, no configuration space,
 * no device-specific features. Each request's device-writable buffers are filled from an
 * {@link EntropySupplier}, at most {@link #maxRequestBytes()} bytes per request, and the used
 * length says how many were written (§5.4.6.2).
 *
 * <p><b>Threading.</b> Generating may block (a {@code SecureRandom} waiting for the kernel), so
 * the supplier is called only on a generator thread, which keeps a 64 KiB buffer full from the
 * first activation until {@link #close}. The requestq belongs to a worker thread from
 * {@link #activate} until {@link #reset}: it pops, parses, copies buffered bytes in, and publishes
 * used entries; the transport's interrupt thread only wakes it. The worker waits only
 * interruptibly, so a reset never waits for the source. A request gets what is buffered, up to its
 * length and the cap (the device may use less than the whole buffer, §5.4.6.2); bytes come out in
 * the supplier's order, and survive resets until used.
 *
 * <p><b>Untrusted driver.</b> The queue validates every chain; {@link RngRequest#parse} refuses a
 * device-readable buffer. A violation marks the queue broken and reports the fault
 * (DEVICE_NEEDS_RESET); the worker stops serving the queue.
 */
public final class RngDevice implements VirtioDeviceModel, AutoCloseable {
    /** The virtio device id of an entropy source (§5). */
    public static final int DEVICE_ID = 4;
    /** Index of the requestq. */
    public static final int REQUESTQ = 0;
    /** QueueNumMax of the requestq. */
    public static final int MAX_QUEUE_SIZE = 256;
    /** The default cap on the bytes one request gets, 64 KiB. */
    public static final int DEFAULT_MAX_REQUEST_BYTES = 64 * 1024;
    /** The features offered: only ring features; the device type defines none (§5.4.3). */
    public static final long FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX,
            VirtioFeatures.VIRTIO_F_INDIRECT_DESC);

    private static final int POOL_CHUNKS = 16;

    private final EntropyPool pool;
    private final int maxRequestBytes;
    private final RngMetrics metrics = new RngMetrics();
    private Worker worker; // interrupt thread only
    private boolean poolStarted; // interrupt thread only

    /** Creates the device over a new {@link java.security.SecureRandom}, 64 KiB per request. */
    public RngDevice() {
        this(EntropySupplier.secure(), DEFAULT_MAX_REQUEST_BYTES);
    }

    /**
     * Creates the device over a supplier, 64 KiB per request.
     *
     * @param source where the bytes come from
     */
    public RngDevice(EntropySupplier source) {
        this(source, DEFAULT_MAX_REQUEST_BYTES);
    }

    /**
     * Creates the device.
     *
     * @param source          where the bytes come from
     * @param maxRequestBytes the most bytes one request gets, 1 to 16 MiB
     * @throws IllegalArgumentException if the cap is out of range
     */
    public RngDevice(EntropySupplier source, int maxRequestBytes) {
        Objects.requireNonNull(source, "source");
        if (maxRequestBytes < 1 || maxRequestBytes > 16 << 20) {
            throw new IllegalArgumentException("maxRequestBytes must be 1 to 16 MiB: " + maxRequestBytes);
        }
        this.maxRequestBytes = maxRequestBytes;
        this.pool = new EntropyPool(source, POOL_CHUNKS, metrics, Integer.toHexString(System.identityHashCode(this)));
    }

    /**
     * The per-request cap.
     *
     * @return bytes
     */
    public int maxRequestBytes() {
        return maxRequestBytes;
    }

    /**
     * The device's counters (kept across resets).
     *
     * @return the metrics
     */
    public RngMetrics metrics() {
        return metrics;
    }

    @Override
    public int deviceId() {
        return DEVICE_ID;
    }

    @Override
    public long deviceFeatures() {
        return FEATURES;
    }

    @Override
    public int queueCount() {
        return 1;
    }

    @Override
    public int maxQueueSize(int queue) {
        return MAX_QUEUE_SIZE;
    }

    @Override
    public int configSizeBytes() {
        return 0;
    }

    @Override
    public long readConfig(int offset, int sizeBytes) {
        return 0; // unreachable: the transport bounds accesses by configSizeBytes() == 0
    }

    @Override
    public boolean writeConfig(int offset, int sizeBytes, long value) {
        return false;
    }

    @Override
    public void activate(DeviceContext context, long negotiatedFeatures, List<VirtqueueDevice> queues) {
        stopWorker();
        if (!poolStarted) {
            poolStarted = true;
            pool.start(); // the first activation starts drawing from the source
        }
        VirtqueueDevice requestq = queues.get(REQUESTQ);
        if (requestq != null) {
            worker = new Worker(context, requestq);
            worker.thread.start();
        }
    }

    @Override
    public void queueNotified(int queue) {
        Worker w = worker;
        if (w != null) {
            w.wake();
        }
    }

    /** Stops the worker and waits until it no longer touches the requestq. */
    @Override
    public void reset() {
        stopWorker();
    }

    /**
     * Stops the generator thread and wipes the buffered bytes. Remove the device from its host (or
     * reset it) first: an active device whose source is closed reports a fault on its next request.
     */
    @Override
    public void close() {
        pool.close();
    }

    private void stopWorker() {
        Worker w = worker;
        worker = null;
        if (w != null) {
            w.stop();
        }
    }

    /** The owner of the requestq during one activation. */
    private final class Worker implements Runnable {
        private final DeviceContext context;
        private final VirtqueueDevice queue;
        private final Thread thread;
        private final CountDownLatch ringsReleased = new CountDownLatch(1);
        private final Object wakeLock = new Object();
        private boolean woken; // guarded by wakeLock
        private volatile boolean stopped;

        Worker(DeviceContext context, VirtqueueDevice queue) {
            this.context = context;
            this.queue = queue;
            this.thread = Thread.ofPlatform().daemon().name("rng " + context.name()).unstarted(this);
        }

        void wake() {
            synchronized (wakeLock) {
                woken = true;
                wakeLock.notifyAll();
            }
        }

        /**
         * Stops the worker and waits until it has left the ring code. It does not wait for a fault
         * report in progress: that takes the status machine's lock, which the resetting thread holds.
         */
        void stop() {
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
        public void run() {
            VirtioFault fault = null;
            try {
                serve();
            } catch (InterruptedException e) {
                // stopped by reset
            } catch (VirtioProtocolException e) {
                fault = e.fault();
            } catch (RuntimeException e) {
                fault = new VirtioFault(queue.name(), "requestq", 0, "entropy device failed: " + e.getMessage());
            } finally {
                ringsReleased.countDown();
            }
            if (fault != null && !stopped) {
                queue.markBroken(fault);
                metrics.recordFault();
                context.reportFault(fault);
            }
        }

        private void serve() throws InterruptedException {
            DescriptorChain pending = null; // popped and parsed, waiting for bytes
            int pendingLength = 0;
            while (!stopped) {
                synchronized (wakeLock) {
                    woken = false;
                }
                if (pending == null) {
                    pending = queue.pop();
                    if (pending == null) {
                        idle();
                        continue;
                    }
                    pendingLength = RngRequest.parse(pending, maxRequestBytes, queue.name()).lengthBytes();
                }
                long start = System.nanoTime();
                long written = pendingLength == 0 ? 0 : pool.drainInto(pending, pendingLength);
                if (written == 0 && pendingLength != 0) {
                    pool.awaitBytes(); // the generator is behind: wait, interruptibly, holding the chain
                    continue;
                }
                queue.pushUsed(pending, written);
                pending = null;
                metrics.recordRequest(written, start, System.nanoTime());
                signalIfNeeded();
            }
        }

        /** Re-enables notifications and, unless chains arrived meanwhile, waits for a wake-up. */
        private void idle() throws InterruptedException {
            if (queue.enableNotifications()) {
                synchronized (wakeLock) {
                    while (!woken && !stopped) {
                        wakeLock.wait();
                    }
                }
            }
            queue.disableNotifications();
        }

        private void signalIfNeeded() {
            if (queue.needsInterrupt() && !stopped) {
                context.signalUsedBuffers(REQUESTQ);
            }
        }
    }
}
