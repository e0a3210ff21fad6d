package dev.airlock.devices.rng;

import dev.airlock.transport.DriverSignals;
import dev.airlock.transport.DriverTransport;
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
import java.util.concurrent.locks.ReentrantLock;

/**
 * The entropy device's frontend driver, for an application in the secondary VM: blocking reads of
 * random bytes from the device (VIRTIO 1.2 §5.4).
 *
 * <p>The driver posts up to {@link #BUFFERS} device-writable buffers of {@link #BUFFER_BYTES}
 * each, in the guest's private RAM (the slice given to the constructor); {@link VirtqueueDriver#add}
 * bounces each through the swiotlb pool in the shared region, and {@code reap} copies the bytes
 * back. A device may fill a buffer only partly (the used length says how much); the driver asks
 * again for what is missing, so a read returns only when {@code dst} is full. Requests left in the
 * queue by a read that failed (interrupted, say) serve the next read; bytes a request brings beyond
 * what that read still needs are discarded, never kept for later.
 *
 * <p><b>Backend restart.</b> When the device's backend process dies, the transport is
 * {@linkplain DriverTransport#isDetached() detached}: a read, blocked or new, waits (it is
 * interruptible) for as long as the transport stays detached, with nothing in {@code dst} handed
 * over twice. When a new backend attaches, the reading thread resets and initialises the device
 * again, checks that it negotiates the same features as the first time, and asks again for what
 * the requests in flight had not delivered; the read then completes as if nothing had happened.
 * Bytes the old device wrote but the driver had not taken back are discarded, so entropy already
 * returned to a caller is never returned again. How long a detach may last is the transport's
 * business (vhost-user: its reconnect window); when the transport then breaks, the read throws
 * {@link IOException}. A device that comes back with other features, or that refuses the driver,
 * fails this read and every later one. A transport that breaks for good (not detached) fails reads
 * at once, as does a device that sets DEVICE_NEEDS_RESET or breaks the queue protocol.
 *
 * <p>Thread-safe: reads are serialized, and only the reading thread touches the queue.
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
    private final long features;
    private final RngMetrics metrics = new RngMetrics();
    private final ReentrantLock readLock = new ReentrantLock();
    private final DriverSignals signals;
    private final ArrayDeque<Integer> freeSlots = new ArrayDeque<>(); // reader only
    private final int[] slotLength = new int[BUFFERS]; // reader only
    private final ScatterGather sg = new ScatterGather(1);
    private long configEpochChecked; // reader only
    private long inFlightBytes; // reader only: bytes asked for and not yet taken back
    private IOException failure; // reader only: set once the device cannot be used again
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
        this.signals = new DriverSignals(frontend, "the entropy device");
        this.features = frontend.initialize(RngDevice.DEVICE_ID, SUPPORTED_FEATURES, BUFFERS);
        if (!VirtioFeatures.has(features, VirtioFeatures.VIRTIO_F_VERSION_1)) {
            throw new TransportException("entropy device without VIRTIO_F_VERSION_1");
        }
    }

    /**
     * The driver's counters: requests completed, bytes received, re-initialisations.
     *
     * @return the metrics
     */
    public RngMetrics metrics() {
        return metrics;
    }

    /**
     * Fills {@code dst} with random bytes from the device; blocks until it is full, including while
     * the device's backend is detached (see the class comment).
     *
     * @param dst receives {@code dst.length} bytes
     * @throws IOException if the device needs a reset, the transport broke, the device came back
     *                     different, the source is closed, or the thread was interrupted
     *                     ({@link InterruptedIOException})
     */
    public void read(byte[] dst) throws IOException {
        read(MemorySegment.ofArray(dst));
    }

    /**
     * Fills {@code dst} with random bytes from the device; blocks until it is full, including while
     * the device's backend is detached (see the class comment).
     *
     * @param dst receives {@code dst.byteSize()} bytes; any segment (heap or native)
     * @throws IOException if the device needs a reset, the transport broke, the device came back
     *                     different, the source is closed, or the thread was interrupted
     *                     ({@link InterruptedIOException})
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
        long length = dst.byteSize();
        long[] received = {0};
        while (received[0] < length) {
            long seen = signals.usedEpoch();
            if (!ready()) {
                signals.await(seen); // detached: onReattached or onBroken wakes us
                continue;
            }
            VirtqueueDriver<Integer> q = frontend.queue(RngDevice.REQUESTQ);
            boolean added = false;
            while (!freeSlots.isEmpty() && received[0] + inFlightBytes < length) {
                int slot = freeSlots.poll();
                int n = (int) Math.min(BUFFER_BYTES, length - received[0] - inFlightBytes);
                sg.clear().in(ramGpa + (long) slot * BUFFER_BYTES, n);
                if (!q.add(sg, slot)) {
                    freeSlots.addFirst(slot);
                    break;
                }
                slotLength[slot] = n;
                inFlightBytes += n;
                added = true;
            }
            if (added) {
                frontend.kick(RngDevice.REQUESTQ);
            }
            long start = System.nanoTime();
            int reaped = q.reap((slot, usedBytes) -> {
                // usedBytes <= slotLength[slot]: reap checked it against the chain's writable bytes. A
                // request left over from an earlier, failed read may bring more than this read still needs.
                long n = Math.min(usedBytes, length - received[0]);
                MemorySegment.copy(ram, (long) slot * BUFFER_BYTES, dst, received[0], n);
                received[0] += n;
                release(slot);
                metrics.recordRequest(usedBytes, start, System.nanoTime());
            }, BUFFERS);
            if (reaped == 0 && q.enableCallbacks()) {
                signals.await(seen);
            }
        }
    }

    /** Takes a request's slot back: its bytes are wiped, whether delivered or not. */
    private void release(int slot) {
        ram.asSlice((long) slot * BUFFER_BYTES, slotLength[slot]).fill((byte) 0);
        inFlightBytes -= slotLength[slot];
        slotLength[slot] = 0;
        freeSlots.add(slot);
    }

    /**
     * Before each turn of a read: whether the queue can be used. False while the backend is
     * detached; re-initialises the device once a new backend has attached.
     *
     * @throws IOException if the source is closed or failed, the transport broke, the queue broke
     *                     or the device needs a reset
     */
    private boolean ready() throws IOException {
        if (closed) {
            throw new IOException("entropy source is closed");
        }
        if (failure != null) {
            throw new IOException(failure.getMessage(), failure);
        }
        DriverTransport transport = frontend.transport();
        if (transport.isBroken()) {
            metrics.recordFault();
            throw new IOException("entropy device transport broken: " + transport);
        }
        if (transport.isDetached()) {
            signals.markDetached();
            return false;
        }
        if (signals.detachSeen() && !reinitialise()) {
            return false;
        }
        VirtqueueDriver<Integer> q = frontend.queue(RngDevice.REQUESTQ);
        if (q.isBroken()) {
            metrics.recordFault();
            throw new IOException("entropy device queue broken: " + q.fault().message());
        }
        long config = signals.configEpoch();
        if (config != configEpochChecked) {
            configEpochChecked = config;
            checkStatus();
        }
        return true;
    }

    /**
     * A new backend attached: resets the device (so nothing touches the old ring), takes back the
     * requests in flight (their bytes are discarded; the read asks again), and initialises the
     * device again with the features of the first time.
     *
     * @return true if the device is ready; false if the backend detached again meanwhile
     * @throws IOException if the transport broke or the device came back different or refused the driver
     */
    private boolean reinitialise() throws IOException {
        signals.clearDetach();
        DriverTransport transport = frontend.transport();
        try {
            transport.writeStatus(0);
            if (frontend.status() != 0) {
                throw new TransportException(transport.name() + ": status not 0 after reset");
            }
            if (frontend.queueCount() > RngDevice.REQUESTQ) {
                frontend.<Integer>queue(RngDevice.REQUESTQ).detachUnused(this::release);
            }
            long again = frontend.initialize(RngDevice.DEVICE_ID, SUPPORTED_FEATURES, BUFFERS);
            if (again != features) {
                frontend.reset();
                failure = new IOException("entropy device " + transport.name() + " came back with features "
                        + VirtioFeatures.describe(again) + "; the driver negotiated " + VirtioFeatures.describe(features));
                throw failure;
            }
        } catch (TransportException e) {
            if (!transport.isBroken() && (transport.isDetached() || signals.detachSeen())) {
                signals.markDetached();
                return false; // the new backend went away too: wait for the next one
            }
            if (transport.isBroken()) {
                throw new IOException("entropy device transport broken: " + e.getMessage(), e);
            }
            failure = new IOException("entropy device " + transport.name() + " could not be initialised again: "
                    + e.getMessage(), e);
            throw failure;
        }
        metrics.recordReattach();
        return true;
    }

    private void checkStatus() throws IOException {
        int status;
        try {
            status = frontend.status();
        } catch (TransportException e) {
            if (frontend.transport().isDetached()) {
                return; // the next turn waits for the new backend
            }
            throw new IOException("entropy device transport failed: " + e.getMessage(), e);
        }
        if ((status & DeviceStatus.DEVICE_NEEDS_RESET) != 0) {
            failure = new IOException("entropy device needs a reset");
            throw failure;
        }
    }

    /**
     * Resets the device (dropping requests in flight) unless its transport is broken or detached;
     * reads then fail.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        signals.close(); // a blocked reader wakes and sees closed
        readLock.lock();
        try {
            frontend.setListener(null);
            DriverTransport transport = frontend.transport();
            if (!transport.isBroken() && !transport.isDetached()) {
                try {
                    frontend.reset();
                } catch (TransportException e) {
                    // The backend went away meanwhile: the next initialise (or the frontend's close) frees the queue.
                }
            }
        } finally {
            readLock.unlock();
        }
    }
}
