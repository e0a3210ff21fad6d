package dev.airlock.transport;

import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDevice;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The test device: each chain's device-readable bytes come back reversed in its device-writable
 * bytes. One queue. Configuration (16 bytes): u32 tag (driver-writable), u32 epoch, u64 label (the
 * device changes epoch and label together, under a generation change).
 *
 * <p>When polled ({@link DeviceContext#notificationMode()} is POLLING) it drains the queue once per
 * call and leaves notifications as the transport set them, unless made with
 * {@code reenableWhenPolled}: then it runs the doorbell loop (disable, drain, re-enable and re-check)
 * as a model written only for doorbells would.
 */
final class EchoDevice implements VirtioDeviceModel {
    static final int DEVICE_ID = 0x7e;
    static final int MAX_QUEUE_SIZE = 256;
    static final int ECHO_F_UPPER = 0;
    static final int ECHO_F_LOWER = 1;
    static final long FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX,
            VirtioFeatures.VIRTIO_F_INDIRECT_DESC, ECHO_F_UPPER, ECHO_F_LOWER);
    static final int TAG_OFFSET = 0;
    static final int EPOCH_OFFSET = 4;
    static final int LABEL_OFFSET = 8;
    static final int CONFIG_SIZE = 16;
    private static final int MAX_REQUEST_BYTES = 64 * 1024;

    final AtomicInteger resets = new AtomicInteger();
    final AtomicInteger activations = new AtomicInteger();
    /** Calls that overlapped another call (the transport promises one thread at a time). */
    final AtomicInteger overlaps = new AtomicInteger();
    private final AtomicInteger inside = new AtomicInteger();
    private final byte[] buffer = new byte[MAX_REQUEST_BYTES];
    private final MemorySegment bufferSegment = MemorySegment.ofArray(buffer);
    private volatile DeviceContext context;
    private VirtqueueDevice queue;
    private int tag;
    private int epoch;
    private long label;
    private final boolean reenableWhenPolled;

    EchoDevice() {
        this(false);
    }

    EchoDevice(boolean reenableWhenPolled) {
        this.reenableWhenPolled = reenableWhenPolled;
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
    public boolean acceptFeatures(long driverFeatures) {
        // Upper- and lower-casing at once makes no sense: refused.
        return !(VirtioFeatures.has(driverFeatures, ECHO_F_UPPER) && VirtioFeatures.has(driverFeatures, ECHO_F_LOWER));
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
        return CONFIG_SIZE;
    }

    @Override
    public synchronized long readConfig(int offset, int sizeBytes) {
        long all = Integer.toUnsignedLong(tag) | Integer.toUnsignedLong(epoch) << 32;
        long word = offset < 8 ? all : label;
        return word >>> (8 * (offset & 7));
    }

    @Override
    public boolean writeConfig(int offset, int sizeBytes, long value) {
        enter();
        try {
            if (offset != TAG_OFFSET || sizeBytes != 4) {
                return false;
            }
            synchronized (this) {
                tag = (int) value;
            }
            return true;
        } finally {
            inside.decrementAndGet();
        }
    }

    /** Changes the device-owned configuration (from any thread) and tells the driver. */
    void setLabel(long newLabel) {
        synchronized (this) {
            label = newLabel;
            epoch++;
        }
        DeviceContext c = context;
        if (c != null) {
            c.configChanged();
        }
    }

    @Override
    public void activate(DeviceContext context, long negotiatedFeatures, List<VirtqueueDevice> queues) {
        enter();
        try {
            this.queue = queues.get(0);
            this.context = context;
            activations.incrementAndGet();
        } finally {
            inside.decrementAndGet();
        }
    }

    private void enter() {
        if (inside.incrementAndGet() != 1) {
            overlaps.incrementAndGet();
        }
    }

    @Override
    public void queueNotified(int queueIndex) {
        enter();
        try {
            serve(queueIndex);
        } finally {
            inside.decrementAndGet();
        }
    }

    private void serve(int queueIndex) {
        VirtqueueDevice q = queue;
        if (q == null) {
            return;
        }
        if (context.notificationMode() == NotificationMode.POLLING && !reenableWhenPolled) {
            drain(q, queueIndex); // the transport keeps notifications suppressed
            return;
        }
        do {
            q.disableNotifications();
            drain(q, queueIndex);
        } while (!q.enableNotifications());
    }

    private void drain(VirtqueueDevice q, int queueIndex) {
        DescriptorChain chain;
        while ((chain = q.pop()) != null) {
            int n = (int) Math.min(chain.readableBytes(), MAX_REQUEST_BYTES);
            chain.readFrom(0, bufferSegment.asSlice(0, n));
            for (int i = 0, j = n - 1; i < j; i++, j--) {
                byte t = buffer[i];
                buffer[i] = buffer[j];
                buffer[j] = t;
            }
            long written = chain.writeTo(0, bufferSegment.asSlice(0, n));
            q.addUsed(chain, written);
        }
        q.publishUsed();
        if (q.needsInterrupt()) {
            context.signalUsedBuffers(queueIndex);
        }
    }

    @Override
    public void reset() {
        enter();
        try {
            queue = null;
            context = null;
            resets.incrementAndGet();
        } finally {
            inside.decrementAndGet();
        }
    }
}
