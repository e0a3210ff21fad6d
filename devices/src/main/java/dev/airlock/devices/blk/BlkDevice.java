package dev.airlock.devices.blk;

import dev.airlock.transport.DeviceContext;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDevice;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Objects;

/**
 * The virtio-blk backend (VIRTIO 1.2 §5.2, device id 2) over a raw image file.
 *
 * <p>Offers VERSION_1, EVENT_IDX, INDIRECT_DESC, SIZE_MAX, SEG_MAX, BLK_SIZE and FLUSH; RO when
 * read-only, else DISCARD and WRITE_ZEROES; MQ with more than one queue. Serves IN, OUT, FLUSH,
 * GET_ID, DISCARD and WRITE_ZEROES; any other type is answered UNSUPP.
 *
 * <p><b>Threads.</b> The transport's interrupt thread calls this model; it never does I/O there.
 * {@link #activate} starts one worker thread per enabled queue (named after the device and the
 * queue), {@link #queueNotified} only wakes that queue's worker, and {@link #reset} stops the workers
 * and waits for them, so nothing touches the rings once it returns. Writes are acknowledged when the
 * file has them (in the page cache); FLUSH makes every acknowledged write durable with
 * {@code fsync}.
 *
 * <p>Open with {@link #open(BlkOptions)}; {@link #close()} resets and releases the image and its lock.
 */
public final class BlkDevice implements VirtioDeviceModel, AutoCloseable {
    /** The virtio device id of a block device. */
    public static final int DEVICE_ID = 2;

    private final BlkOptions options;
    private final BlkImage image;
    private final long capacitySectors;
    private final long features;
    private final MemorySegment config;
    private final BlkMetrics metrics = new BlkMetrics();
    private volatile BlkQueueWorker[] workers = new BlkQueueWorker[0];
    private boolean closed;
    private DeviceContext activeContext;

    private BlkDevice(BlkOptions options, BlkImage image) {
        this.options = options;
        this.image = image;
        this.capacitySectors = image.sizeBytes() >>> BlkRequestLayout.SECTOR_SHIFT;
        this.features = features(options);
        this.config = buildConfig(options, capacitySectors);
    }

    /**
     * Opens and locks the image and creates the device.
     *
     * @param options the image and limits
     * @return the device, not yet served
     * @throws BlkImageLockedException if another backend serves the image read-write (or, for a
     *                                 read-write device, at all)
     * @throws IOException             if the image cannot be opened
     */
    public static BlkDevice open(BlkOptions options) throws IOException {
        Objects.requireNonNull(options, "options");
        return new BlkDevice(options, BlkImage.open(options.image(), options.readOnly()));
    }

    private static long features(BlkOptions options) {
        long f = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX,
                VirtioFeatures.VIRTIO_F_INDIRECT_DESC, BlkConfigLayout.VIRTIO_BLK_F_SIZE_MAX, BlkConfigLayout.VIRTIO_BLK_F_SEG_MAX,
                BlkConfigLayout.VIRTIO_BLK_F_BLK_SIZE, BlkConfigLayout.VIRTIO_BLK_F_FLUSH);
        if (options.readOnly()) {
            f |= VirtioFeatures.bit(BlkConfigLayout.VIRTIO_BLK_F_RO);
        } else {
            f |= VirtioFeatures.of(BlkConfigLayout.VIRTIO_BLK_F_DISCARD, BlkConfigLayout.VIRTIO_BLK_F_WRITE_ZEROES);
        }
        if (options.numQueues() > 1) {
            f |= VirtioFeatures.bit(BlkConfigLayout.VIRTIO_BLK_F_MQ);
        }
        return f;
    }

    private static MemorySegment buildConfig(BlkOptions o, long capacitySectors) {
        MemorySegment c = MemorySegment.ofArray(new byte[BlkConfigLayout.CONFIG_LENGTH]);
        BlkConfigLayout.set(c, BlkConfigLayout.CAPACITY_OFFSET, 8, capacitySectors);
        BlkConfigLayout.set(c, BlkConfigLayout.SIZE_MAX_OFFSET, 4, o.sizeMax());
        BlkConfigLayout.set(c, BlkConfigLayout.SEG_MAX_OFFSET, 4, o.segMax());
        BlkConfigLayout.set(c, BlkConfigLayout.BLK_SIZE_OFFSET, 4, o.blkSize());
        BlkConfigLayout.set(c, BlkConfigLayout.NUM_QUEUES_OFFSET, 2, o.numQueues());
        BlkConfigLayout.set(c, BlkConfigLayout.MAX_DISCARD_SECTORS_OFFSET, 4, o.maxDiscardSectors());
        BlkConfigLayout.set(c, BlkConfigLayout.MAX_DISCARD_SEG_OFFSET, 4, o.maxDiscardSeg());
        BlkConfigLayout.set(c, BlkConfigLayout.DISCARD_SECTOR_ALIGNMENT_OFFSET, 4, o.blkSize() >>> BlkRequestLayout.SECTOR_SHIFT);
        BlkConfigLayout.set(c, BlkConfigLayout.MAX_WRITE_ZEROES_SECTORS_OFFSET, 4, o.maxWriteZeroesSectors());
        BlkConfigLayout.set(c, BlkConfigLayout.MAX_WRITE_ZEROES_SEG_OFFSET, 4, o.maxWriteZeroesSeg());
        BlkConfigLayout.set(c, BlkConfigLayout.WRITE_ZEROES_MAY_UNMAP_OFFSET, 1, o.writeZeroesMayUnmap() ? 1 : 0);
        return c;
    }

    @Override
    public int deviceId() {
        return DEVICE_ID;
    }

    @Override
    public long deviceFeatures() {
        return features;
    }

    @Override
    public int queueCount() {
        return options.numQueues();
    }

    @Override
    public int maxQueueSize(int queue) {
        return options.queueSizeMax();
    }

    @Override
    public int configSizeBytes() {
        return BlkConfigLayout.CONFIG_LENGTH;
    }

    /** {@inheritDoc} The space never changes after construction, so no lock is needed. */
    @Override
    public long readConfig(int offset, int sizeBytes) {
        return BlkConfigLayout.get(config, offset, sizeBytes);
    }

    /** {@inheritDoc} No field is writable ({@code writeback} would need CONFIG_WCE). */
    @Override
    public boolean writeConfig(int offset, int sizeBytes, long value) {
        return false;
    }

    @Override
    public synchronized void activate(DeviceContext context, long negotiatedFeatures, List<VirtqueueDevice> queues) {
        stopWorkers();
        if (closed) {
            context.reportFault(new VirtioFault(context.name(), "image", 0, "block device " + image.path() + " is closed"));
            return;
        }
        activeContext = context;
        BlkQueueWorker[] started = new BlkQueueWorker[queues.size()];
        for (int q = 0; q < queues.size(); q++) {
            VirtqueueDevice queue = queues.get(q);
            if (queue != null) {
                BlkRequestParser parser = new BlkRequestParser(queue.name(), capacitySectors, options, negotiatedFeatures);
                started[q] = new BlkQueueWorker("blk:" + context.name() + ".q" + q, queue, q, context, parser, image,
                        metrics, options.serial());
            }
        }
        workers = started;
        for (BlkQueueWorker w : started) {
            if (w != null) {
                w.start();
            }
        }
    }

    @Override
    public void queueNotified(int queue) {
        BlkQueueWorker[] current = workers;
        if (queue >= 0 && queue < current.length && current[queue] != null) {
            current[queue].kick();
        }
    }

    /** {@inheritDoc} Stops every worker and waits until none touches a ring (at most one I/O each). */
    @Override
    public synchronized void reset() {
        stopWorkers();
        activeContext = null;
    }

    private void stopWorkers() {
        BlkQueueWorker[] current = workers;
        workers = new BlkQueueWorker[0];
        for (BlkQueueWorker w : current) {
            if (w != null) {
                w.stop();
            }
        }
    }

    /**
     * The device's counters.
     *
     * @return the metrics, live
     */
    public BlkMetrics metrics() {
        return metrics;
    }

    /**
     * The capacity in 512-byte sectors (the image size rounded down).
     *
     * @return sectors
     */
    public long capacitySectors() {
        return capacitySectors;
    }

    /**
     * The options the device was opened with.
     *
     * @return the options
     */
    public BlkOptions options() {
        return options;
    }

    /**
     * Stops the workers and closes the image, releasing its lock. Best after the device was removed
     * from its host (or the host closed); if a driver is still using it, it is told with
     * DEVICE_NEEDS_RESET, and any later activation fails the same way. Idempotent.
     *
     * @throws IOException if closing the image fails
     */
    @Override
    public synchronized void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        stopWorkers();
        DeviceContext context = activeContext;
        activeContext = null;
        if (context != null) {
            // Still served: tell the driver rather than leave its requests unanswered.
            context.reportFault(new VirtioFault(context.name(), "image", 0, "block device " + image.path() + " was closed"));
        }
        image.close();
    }

    @Override
    public String toString() {
        return "BlkDevice(" + image.path() + ", " + capacitySectors + " sectors" + (options.readOnly() ? ", read-only" : "")
                + ", " + options.numQueues() + " queue(s))";
    }
}
