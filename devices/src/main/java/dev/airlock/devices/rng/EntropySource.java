package dev.airlock.devices.rng;

import dev.airlock.transport.TransportException;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDriver;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The entropy device's frontend driver, for an application in the secondary VM: blocking reads of
 * random bytes from the device (VIRTIO 1.2 §5.4).
 *
 * <p>The driver posts up to {@link #BUFFERS} device-writable buffers of {@link #BUFFER_BYTES}
 * each, in the guest's private RAM (the slice given to the constructor); {@link VirtqueueDriver#add}
 * bounces each through the swiotlb pool in the shared region, and {@code reap} copies the bytes
 * back. A device may fill a buffer only partly (the used length says how much); the driver asks
 * again for what is missing, so a read returns only when {@code dst} is full.
 *
 * <p>Thread-safe: reads are serialized.
 */
public final class EntropySource implements AutoCloseable {
    /** Bytes per request buffer. */
    public static final int BUFFER_BYTES = 4096;
    /** Request buffers in flight at most. */
    public static final int BUFFERS = 8;
    /** Private RAM the driver needs for its buffers. */
    public static final long RAM_BYTES = (long) BUFFER_BYTES * BUFFERS;
    /** Features the driver accepts. */
    public static final long SUPPORTED_FEATURES = RngDevice.FEATURES;

    private final VirtioFrontend frontend;
    private final MemorySegment ram;
    private final long ramGpa;
    private final RngMetrics metrics = new RngMetrics();
    private final ReentrantLock readLock = new ReentrantLock();
    private final ReentrantLock signalLock = new ReentrantLock();
    private final Condition signalled = signalLock.newCondition();
    private final ArrayDeque<Integer> freeSlots = new ArrayDeque<>();
    private final int[] slotLength = new int[BUFFERS];
    private final ScatterGather sg = new ScatterGather(1);
    private long usedEpoch;   // guarded by signalLock
    private long configEpoch; // guarded by signalLock
    private long configEpochChecked; // reader only
    private volatile boolean closed;

    /**
     * Initialises the device (§3.1.1) and makes the driver ready.
     *
     * @param frontend the device's frontend, not yet initialised (or reset)
     * @param ram      at least {@link #RAM_BYTES} of the guest's private RAM, for the buffers
     * @param ramGpa   the guest-physical address of {@code ram}
     * @throws TransportException       if the device is not an entropy device or refuses the driver
     * @throws IllegalArgumentException if {@code ram} is too small
     */
    public EntropySource(VirtioFrontend frontend, MemorySegment ram, long ramGpa) {
        this.frontend = Objects.requireNonNull(frontend, "frontend");
        if (ram.byteSize() < RAM_BYTES) {
            throw new IllegalArgumentException("the driver needs " + RAM_BYTES + " bytes of RAM, got " + ram.byteSize());
        }
        this.ram = ram.asSlice(0, RAM_BYTES);
        this.ramGpa = ramGpa;
        for (int i = 0; i < BUFFERS; i++) {
            freeSlots.add(i);
        }
        frontend.setListener(new VirtioFrontend.Listener() {
            @Override
            public void onUsedBuffers() {
                signal(false);
            }

            @Override
            public void onConfigChange() {
                signal(true);
            }
        });
        long features = frontend.initialize(RngDevice.DEVICE_ID, SUPPORTED_FEATURES, BUFFERS);
        if (!VirtioFeatures.has(features, VirtioFeatures.VIRTIO_F_VERSION_1)) {
            throw new TransportException("entropy device without VIRTIO_F_VERSION_1");
        }
    }

    /** On the interrupt thread: wakes a waiting reader. */
    private void signal(boolean config) {
        signalLock.lock();
        try {
            usedEpoch++;
            if (config) {
                configEpoch++;
            }
            signalled.signalAll();
        } finally {
            signalLock.unlock();
        }
    }

    /**
     * The driver's counters: requests completed and bytes received.
     *
     * @return the metrics
     */
    public RngMetrics metrics() {
        return metrics;
    }

    /**
     * Fills {@code dst} with random bytes from the device; blocks until it is full.
     *
     * @param dst receives {@code dst.length} bytes
     * @throws IOException if the device needs a reset, the transport broke, the source is closed,
     *                     or the thread was interrupted ({@link InterruptedIOException})
     */
    public void read(byte[] dst) throws IOException {
        read(MemorySegment.ofArray(dst));
    }

    /**
     * Fills {@code dst} with random bytes from the device; blocks until it is full.
     *
     * @param dst receives {@code dst.byteSize()} bytes; any segment (heap or native)
     * @throws IOException if the device needs a reset, the transport broke, the source is closed,
     *                     or the thread was interrupted ({@link InterruptedIOException})
     */
    public void read(MemorySegment dst) throws IOException {
        readLock.lock();
        try {
            fill(dst);
        } finally {
            readLock.unlock();
        }
    }

    private void fill(MemorySegment dst) throws IOException {
        if (closed) {
            throw new IOException("entropy source is closed");
        }
        VirtqueueDriver<Integer> q = frontend.queue(RngDevice.REQUESTQ);
        long length = dst.byteSize();
        long[] progress = {0, 0}; // bytes received, bytes requested and still in flight
        while (progress[0] < length) {
            checkUsable(q);
            long seen = epoch(false);
            boolean added = false;
            while (!freeSlots.isEmpty() && progress[0] + progress[1] < length) {
                int slot = freeSlots.poll();
                int n = (int) Math.min(BUFFER_BYTES, length - progress[0] - progress[1]);
                sg.clear().in(ramGpa + (long) slot * BUFFER_BYTES, n);
                if (!q.add(sg, slot)) {
                    freeSlots.addFirst(slot);
                    break;
                }
                slotLength[slot] = n;
                progress[1] += n;
                added = true;
            }
            if (added) {
                frontend.kick(RngDevice.REQUESTQ);
            }
            long start = System.nanoTime();
            int reaped = q.reap((slot, usedBytes) -> {
                // usedBytes <= slotLength[slot]: reap checked it against the chain's writable bytes.
                MemorySegment.copy(ram, (long) slot * BUFFER_BYTES, dst, progress[0], usedBytes);
                ram.asSlice((long) slot * BUFFER_BYTES, slotLength[slot]).fill((byte) 0);
                progress[0] += usedBytes;
                progress[1] -= slotLength[slot];
                freeSlots.add(slot);
                metrics.recordRequest(usedBytes, start, System.nanoTime());
            }, BUFFERS);
            if (reaped == 0 && q.enableCallbacks()) {
                await(seen);
            }
        }
    }

    private long epoch(boolean config) {
        signalLock.lock();
        try {
            return config ? configEpoch : usedEpoch;
        } finally {
            signalLock.unlock();
        }
    }

    /** Waits for a signal after {@code seen}; checks the device status on a configuration change. */
    private void await(long seen) throws IOException {
        signalLock.lock();
        try {
            while (usedEpoch == seen) {
                // The timeout is a safety net only: every completion is signalled.
                if (!signalled.await(1, TimeUnit.SECONDS)) {
                    break;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted waiting for the entropy device");
        } finally {
            signalLock.unlock();
        }
        long config = epoch(true);
        if (config != configEpochChecked) {
            configEpochChecked = config;
            checkStatus();
        }
    }

    private void checkUsable(VirtqueueDriver<Integer> q) throws IOException {
        if (closed) {
            throw new IOException("entropy source is closed");
        }
        if (q.isBroken()) {
            metrics.recordFault();
            throw new IOException("entropy device queue broken: " + q.fault().message());
        }
    }

    private void checkStatus() throws IOException {
        try {
            if ((frontend.status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0) {
                throw new IOException("entropy device needs a reset");
            }
        } catch (TransportException e) {
            throw new IOException("entropy device transport failed: " + e.getMessage(), e);
        }
    }

    /** Resets the device (dropping requests in flight) unless its transport is broken; reads then fail. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        signal(false); // a blocked reader wakes and sees closed
        readLock.lock();
        try {
            frontend.setListener(null);
            if (!frontend.transport().isBroken()) {
                frontend.reset();
            }
        } finally {
            readLock.unlock();
        }
    }
}
