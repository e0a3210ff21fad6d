package dev.airlock.bench.suite;

import dev.airlock.transport.DeviceContext;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDevice;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * The suite's echo device: one queue; each chain's device-readable bytes are read out of the
 * shared region into the device's own buffer, and as many of them as fit are written back into the
 * chain's device-writable bytes. A chain with no writable buffer is a bulk write: the device reads
 * (consumes) it and uses it with length 0. No configuration space.
 *
 * <p>It runs on the device host's interrupt thread, as {@link VirtioDeviceModel} requires: a
 * notification drains the queue with notifications off, then re-enables them and drains again if
 * the driver added buffers meanwhile (VIRTIO 1.2 §2.7.10).
 */
public final class BenchEchoDevice implements VirtioDeviceModel {
    /** A device id from the range the spec leaves unassigned, private to the suite. */
    public static final int DEVICE_ID = 0x7f;
    /** The largest queue the device accepts. */
    public static final int MAX_QUEUE_SIZE = 256;
    /** The features offered. */
    public static final long FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX,
            VirtioFeatures.VIRTIO_F_INDIRECT_DESC);
    private static final int BUFFER_BYTES = 64 * 1024;

    private final MemorySegment buffer = Arena.ofAuto().allocate(BUFFER_BYTES, 64);
    private volatile DeviceContext context;
    private volatile VirtqueueDevice queue;
    /** Written by the one thread that calls the model at a time, read by others for the stats line. */
    private volatile long requests;

    /** Creates the device. */
    public BenchEchoDevice() {
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
    public int maxQueueSize(int queueIndex) {
        return MAX_QUEUE_SIZE;
    }

    @Override
    public int configSizeBytes() {
        return 0;
    }

    @Override
    public long readConfig(int offset, int sizeBytes) {
        return 0; // never called: the space is empty and the transport checks bounds
    }

    @Override
    public boolean writeConfig(int offset, int sizeBytes, long value) {
        return false;
    }

    @Override
    public void activate(DeviceContext deviceContext, long negotiatedFeatures, List<VirtqueueDevice> queues) {
        this.context = deviceContext;
        this.queue = queues.get(0);
    }

    @Override
    public void queueNotified(int queueIndex) {
        VirtqueueDevice q = queue;
        DeviceContext c = context;
        if (q == null || c == null) {
            return;
        }
        do {
            q.disableNotifications();
            drain(q, c, queueIndex);
        } while (!q.enableNotifications());
    }

    /**
     * Serves every available chain, publishes the used ring once and interrupts the driver if it
     * asked for it.
     *
     * @param q          the queue
     * @param c          the device's context
     * @param queueIndex the queue's index
     * @return the number of chains served
     */
    int drain(VirtqueueDevice q, DeviceContext c, int queueIndex) {
        int served = 0;
        DescriptorChain chain;
        while ((chain = q.pop()) != null) {
            q.addUsed(chain, echo(chain));
            served++;
        }
        if (served > 0) {
            q.publishUsed();
            if (q.needsInterrupt()) {
                c.signalUsedBuffers(queueIndex);
            }
            requests += served;
        }
        return served;
    }

    private long echo(DescriptorChain chain) {
        long readable = chain.readableBytes();
        long writable = chain.writableBytes();
        long offset = 0;
        long written = 0;
        while (offset < readable) { // a chain longer than the buffer is consumed in pieces
            int n = (int) Math.min(BUFFER_BYTES, readable - offset);
            chain.readFrom(offset, buffer.asSlice(0, n));
            if (offset < writable) {
                int w = (int) Math.min(n, writable - offset);
                written += chain.writeTo(offset, buffer.asSlice(0, w));
            }
            offset += n;
        }
        return written;
    }

    /**
     * Requests served since creation.
     *
     * @return the count
     */
    public long requests() {
        return requests;
    }

    @Override
    public void reset() {
        queue = null;
        context = null;
    }
}
