package dev.airlock.vhostuser;

import dev.airlock.transport.DeviceContext;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDevice;

import java.lang.foreign.MemorySegment;
import java.security.SecureRandom;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/** Test entropy device (virtio id 4, one request queue): fills every writable buffer with random bytes. */
final class TestRngModel implements VirtioDeviceModel {
    final AtomicLong bytesServed = new AtomicLong();
    final AtomicLong activations = new AtomicLong();
    final AtomicLong resets = new AtomicLong();
    private final SecureRandom random = new SecureRandom();
    private volatile VirtqueueDevice queue;
    private volatile DeviceContext context;

    @Override
    public int deviceId() {
        return 4;
    }

    @Override
    public long deviceFeatures() {
        return VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX, VirtioFeatures.VIRTIO_F_INDIRECT_DESC);
    }

    @Override
    public int queueCount() {
        return 1;
    }

    @Override
    public int maxQueueSize(int q) {
        return 1024;
    }

    @Override
    public int configSizeBytes() {
        return 0;
    }

    @Override
    public long readConfig(int offset, int sizeBytes) {
        return 0;
    }

    @Override
    public boolean writeConfig(int offset, int sizeBytes, long value) {
        return false;
    }

    @Override
    public void activate(DeviceContext ctx, long negotiatedFeatures, List<VirtqueueDevice> queues) {
        this.context = ctx;
        this.queue = queues.get(0);
        activations.incrementAndGet();
    }

    @Override
    public void queueNotified(int index) {
        VirtqueueDevice q = queue;
        if (q == null) {
            return;
        }
        do {
            q.disableNotifications();
            DescriptorChain chain;
            while ((chain = q.pop()) != null) {
                byte[] bytes = new byte[(int) Math.min(chain.writableBytes(), 64 * 1024)];
                random.nextBytes(bytes);
                long n = chain.writeTo(0, MemorySegment.ofArray(bytes));
                bytesServed.addAndGet(n);
                q.addUsed(chain, n);
            }
            q.publishUsed();
            if (q.needsInterrupt()) {
                context.signalUsedBuffers(index);
            }
        } while (!q.enableNotifications());
    }

    @Override
    public void reset() {
        queue = null;
        resets.incrementAndGet();
    }
}
