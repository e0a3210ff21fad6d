package dev.airlock.transport;

import dev.airlock.dma.BounceDmaOps;
import dev.airlock.dma.DmaOps;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.swiotlb.SwiotlbPool;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDriver;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * The generic driver side of a virtio device over any {@link DriverTransport}: the device
 * initialisation of VIRTIO 1.2 §3.1.1, the virtqueues (over bounce DMA through a swiotlb pool that
 * covers the device's shared region, less the shmem-doorbell header), configuration reads with the
 * generation retry loop (§2.5.1), and reset. A device-type driver (blk, console, ...) builds on it
 * and does not see the transport.
 *
 * <p>Backend restart (multi-process runtime): when the device's backend process dies, the
 * transport is {@link DriverTransport#isDetached() detached}, every queue is marked broken and the
 * listener hears {@link Listener#onBroken()}; calls fail fast with {@link TransportException}. When
 * a new backend attaches ({@link Listener#onReattached()}), {@link #initialize} on this same frontend
 * resets the new device, frees the old queues (in-flight buffers are unmapped and their tokens
 * dropped; a driver that wants them calls {@code queue(i).detachUnused} first) and sets up new ones
 * from the same bounce pool, after which the driver resubmits. An {@code initialize} that fails while
 * detached also frees the queues.
 *
 * <p>Threading: one driver thread at a time calls the methods here and the queues' methods;
 * {@link Listener} callbacks arrive on the secondary's interrupt thread and should only wake that
 * thread.
 */
public final class VirtioFrontend implements AutoCloseable {
    /** Interrupts for the driver; called on the interrupt thread. */
    public interface Listener {
        /** Some queue has used buffers: reap (on the driver thread). */
        void onUsedBuffers();

        /** The configuration changed or the device needs a reset: check {@link #status()}. */
        default void onConfigChange() {
        }

        /**
         * The transport broke (its device timed out or its VM is gone): every queue is already
         * marked broken, so a driver woken here reaps nothing and sees {@code isBroken()}; the
         * transport's calls throw {@link TransportException}. By default, both methods above are
         * called, so a driver parked waiting for either wakes up.
         */
        default void onBroken() {
            onUsedBuffers();
            onConfigChange();
        }

        /**
         * A new backend process attached after the device's backend died (the transport was
         * {@link DriverTransport#isDetached() detached}, and {@link #onBroken()} was called then): the
         * device is in its reset state. The driver calls {@link #initialize} again on its own thread,
         * which frees the old queues (unmapping what was in flight), and resubmits its requests. By
         * default {@link #onConfigChange()} is called, so a driver parked waiting wakes up.
         */
        default void onReattached() {
            onConfigChange();
        }
    }

    private static final int CONFIG_RETRIES = 1000;

    private final DriverTransport transport;
    private final SwiotlbPool pool;
    private final BounceDmaOps dma;
    private volatile VirtqueueDriver<?>[] queues = new VirtqueueDriver<?>[0]; // read by onBroken on the interrupt thread
    private long negotiatedFeatures;
    private int deviceId;

    /**
     * Creates the frontend: a bounce pool over the device's shared region from
     * {@link DriverTransport#dmaOffset()} to the end.
     *
     * @param transport   the device's transport
     * @param driverSpace this VM's address space (it holds the private buffers the pool bounces)
     */
    public VirtioFrontend(DriverTransport transport, GuestAddressSpace driverSpace) {
        this.transport = Objects.requireNonNull(transport, "transport");
        long offset = transport.dmaOffset();
        MemorySegment whole = transport.region().region().segment();
        long poolBytes = (whole.byteSize() - offset) & -(long) SwiotlbPool.IO_TLB_SIZE;
        this.pool = SwiotlbPool.create(transport.name(), whole.asSlice(offset, poolBytes),
                transport.region().gpaBase() + offset, driverSpace);
        this.dma = new BounceDmaOps(pool);
    }

    /**
     * Sets who hears the device's interrupts.
     *
     * @param listener the listener, or null
     */
    public void setListener(Listener listener) {
        transport.setListener(listener == null ? null : new DriverTransport.Listener() {
            @Override
            public void onUsedBuffers() {
                listener.onUsedBuffers();
            }

            @Override
            public void onConfigChange() {
                listener.onConfigChange();
            }

            @Override
            public void onBroken() {
                String why = transport.isDetached() ? "the device's backend detached" : "transport broken";
                for (VirtqueueDriver<?> q : queues) {
                    q.markBroken(new VirtioFault(transport.name(), "transport", 0, why));
                }
                listener.onBroken();
            }

            @Override
            public void onReattached() {
                listener.onReattached();
            }
        });
    }

    /**
     * Initialises the device (§3.1.1): reset, ACKNOWLEDGE, check the device id, DRIVER, write
     * the offered features the driver supports, FEATURES_OK and re-read it, set up each queue, DRIVER_OK.
     * On failure the driver sets FAILED (if the device still answers) and throws.
     *
     * @param expectedDeviceId  the device type this driver drives
     * @param supportedFeatures the features the driver understands (VERSION_1 is required)
     * @param queueSizes        the size wanted for each queue; capped at QueueNumMax
     * @return the negotiated features
     * @throws TransportException if the device is missing, of another type, refuses the features
     *                            or a queue, or stops answering
     */
    public long initialize(int expectedDeviceId, long supportedFeatures, int... queueSizes) {
        try {
            reset(); // before the old queues are freed: an active device (a poller, say) may still read them
            transport.writeStatus(DeviceStatus.ACKNOWLEDGE);
            deviceId = transport.probe();
            if (deviceId != expectedDeviceId) {
                throw new TransportException(transport.name() + ": device id " + deviceId + ", expected " + expectedDeviceId);
            }
            transport.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
            long features = transport.deviceFeatures() & supportedFeatures;
            return negotiate(features, queueSizes);
        } catch (TransportException e) {
            fail();
            throw e;
        }
    }

    /**
     * Initialises the device as {@link #initialize}, but writes exactly {@code driverFeatures},
     * offered or not (for drivers that must insist on a combination, and for tests).
     *
     * @param expectedDeviceId the device type
     * @param driverFeatures   the features to write
     * @param queueSizes       the size wanted for each queue
     * @return the negotiated features
     * @throws TransportException as {@link #initialize}
     */
    public long initializeExactly(int expectedDeviceId, long driverFeatures, int... queueSizes) {
        try {
            reset();
            transport.writeStatus(DeviceStatus.ACKNOWLEDGE);
            deviceId = transport.probe();
            if (deviceId != expectedDeviceId) {
                throw new TransportException(transport.name() + ": device id " + deviceId + ", expected " + expectedDeviceId);
            }
            transport.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
            return negotiate(driverFeatures, queueSizes);
        } catch (TransportException e) {
            fail();
            throw e;
        }
    }

    private long negotiate(long features, int[] queueSizes) {
        if (!VirtioFeatures.has(features, VirtioFeatures.VIRTIO_F_VERSION_1)) {
            throw new TransportException(transport.name() + ": device does not offer VIRTIO_F_VERSION_1");
        }
        int base = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER;
        transport.writeDriverFeatures(features);
        transport.writeStatus(base | DeviceStatus.FEATURES_OK);
        if ((transport.status() & DeviceStatus.FEATURES_OK) == 0) { // §3.1.1 step 6
            throw new TransportException(transport.name() + ": device refused features " + VirtioFeatures.describe(features));
        }
        negotiatedFeatures = features;
        VirtqueueDriver<?>[] created = new VirtqueueDriver<?>[queueSizes.length];
        queues = created;
        for (int q = 0; q < queueSizes.length; q++) {
            int max = transport.queueNumMax(q);
            if (max == 0) {
                throw new TransportException(transport.name() + ": queue " + q + " does not exist");
            }
            int size = Integer.highestOneBit(Math.min(Math.max(1, queueSizes[q]), max));
            created[q] = new VirtqueueDriver<>(transport.name() + ".q" + q, dma, size, features);
            if (!transport.enableQueue(q, size, created[q].descAddr(), created[q].availAddr(), created[q].usedAddr())) {
                throw new TransportException(transport.name() + ": device refused queue " + q);
            }
        }
        transport.writeStatus(base | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
        int status = transport.status();
        if ((status & DeviceStatus.DRIVER_OK) == 0 || (status & DeviceStatus.DEVICE_NEEDS_RESET) != 0) {
            throw new TransportException(transport.name() + ": DRIVER_OK did not stick: " + DeviceStatus.describe(status));
        }
        return features;
    }

    private void fail() {
        try {
            if (!transport.isBroken()) {
                transport.writeStatus(transport.status() | DeviceStatus.FAILED);
            }
        } catch (TransportException ignored) {
            // The device stopped answering: the transport is broken already.
        }
        closeQueues();
    }

    /**
     * Resets the device (writes 0 and waits until the status reads back 0, §4.2.3.1) and drops the
     * queues: requests in flight are unmapped and forgotten.
     *
     * @throws TransportException if the device does not answer or does not reset
     */
    public void reset() {
        transport.writeStatus(0);
        if (transport.status() != 0) {
            throw new TransportException(transport.name() + ": status not 0 after reset");
        }
        closeQueues();
    }

    private void closeQueues() {
        for (VirtqueueDriver<?> q : queues) {
            if (q != null) {
                try {
                    q.close();
                } catch (IllegalStateException e) {
                    // The device's VM is gone and the region with it (the runtime revoked the mapping):
                    // there is nothing left to unmap or free.
                    if (!transport.isBroken()) {
                        throw e;
                    }
                }
            }
        }
        queues = new VirtqueueDriver<?>[0];
        negotiatedFeatures = 0;
    }

    /**
     * A queue set up by {@link #initialize}.
     *
     * @param <T>   the token type the caller uses with it
     * @param queue the index
     * @return the queue
     * @throws IndexOutOfBoundsException if there is no such queue
     */
    @SuppressWarnings("unchecked")
    public <T> VirtqueueDriver<T> queue(int queue) {
        return (VirtqueueDriver<T>) queues[queue];
    }

    /**
     * Sends the device an available buffer notification for a queue if the ring asks for one
     * ({@link VirtqueueDriver#kickPrepare()}).
     *
     * @param queue the index
     * @return whether a notification was sent
     */
    public boolean kick(int queue) {
        if (queues[queue].kickPrepare()) {
            transport.notifyQueue(queue);
            return true;
        }
        return false;
    }

    /**
     * Reads {@code dst.length} bytes of configuration space as one consistent snapshot: repeats
     * while the generation changes (§2.5.1, §4.2.3.3 / the header's seqlock).
     *
     * @param offset where to start
     * @param dst    receives the bytes
     * @throws TransportException if the device refuses or the space keeps changing
     */
    public void readConfig(int offset, byte[] dst) {
        for (int attempt = 0; attempt < CONFIG_RETRIES; attempt++) {
            int before = transport.configGeneration();
            int i = 0;
            while (i < dst.length) {
                int at = offset + i;
                int size = (at & 3) == 0 && dst.length - i >= 4 ? 4 : (at & 1) == 0 && dst.length - i >= 2 ? 2 : 1;
                long v = transport.readConfig(at, size);
                for (int b = 0; b < size; b++) {
                    dst[i + b] = (byte) (v >>> (8 * b));
                }
                i += size;
            }
            if (transport.configGeneration() == before) {
                return;
            }
        }
        Arrays.fill(dst, (byte) 0);
        throw new TransportException(transport.name() + ": configuration kept changing over " + CONFIG_RETRIES + " reads");
    }

    /**
     * Writes a configuration field.
     *
     * @param offset    the offset
     * @param sizeBytes 1, 2 or 4
     * @param value     the value in the low bytes
     * @throws TransportException if the device refuses
     */
    public void writeConfig(int offset, int sizeBytes, long value) {
        transport.writeConfig(offset, sizeBytes, value);
    }

    /**
     * The device status.
     *
     * @return the status byte
     */
    public int status() {
        return transport.status();
    }

    /**
     * The features in force since the last {@link #initialize}.
     *
     * @return the features, 0 before
     */
    public long negotiatedFeatures() {
        return negotiatedFeatures;
    }

    /**
     * The number of queues set up.
     *
     * @return the count
     */
    public int queueCount() {
        return queues.length;
    }

    /**
     * The DMA operations every buffer of this device goes through.
     *
     * @return the bounce DMA ops
     */
    public DmaOps dma() {
        return dma;
    }

    /**
     * The bounce pool in the shared region.
     *
     * @return the pool
     */
    public SwiotlbPool pool() {
        return pool;
    }

    /**
     * The transport.
     *
     * @return it
     */
    public DriverTransport transport() {
        return transport;
    }

    /** Resets the device if it still answers, frees the queues, and closes the transport. */
    @Override
    public void close() {
        try {
            if (!transport.isBroken()) {
                transport.writeStatus(0);
            }
        } catch (TransportException ignored) {
            // The device stopped answering; the queues are freed all the same.
        }
        closeQueues();
        transport.close();
    }
}
