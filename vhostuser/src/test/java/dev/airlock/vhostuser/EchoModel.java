package dev.airlock.vhostuser;

import dev.airlock.transport.DeviceContext;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDevice;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Test device: two queues; each chain's readable bytes come back reversed in its writable bytes.
 * With {@link #hold} set it takes chains and keeps them (a request "in flight" forever), recording
 * their heads. Config (8 bytes): u32 tag (writable), u32 magic 0xfeedbeef.
 */
final class EchoModel implements VirtioDeviceModel {
    static final int QUEUES = 2;
    static final int MAX_QUEUE_SIZE = 256;
    static final int MAGIC = 0xfeedbeef;
    static final long FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX,
            VirtioFeatures.VIRTIO_F_INDIRECT_DESC, VirtioFeatures.VIRTIO_F_RING_PACKED, 0);

    final AtomicInteger activations = new AtomicInteger();
    final AtomicInteger resets = new AtomicInteger();
    final List<Integer> heads = new CopyOnWriteArrayList<>();
    final List<String> faults = new CopyOnWriteArrayList<>();
    volatile boolean hold;
    volatile long negotiated;
    private List<VirtqueueDevice> queues;
    private DeviceContext context;
    private volatile int tag;

    @Override
    public int deviceId() {
        return 0x7e;
    }

    @Override
    public long deviceFeatures() {
        return FEATURES;
    }

    @Override
    public int queueCount() {
        return QUEUES;
    }

    @Override
    public int maxQueueSize(int queue) {
        return MAX_QUEUE_SIZE;
    }

    @Override
    public int configSizeBytes() {
        return 8;
    }

    @Override
    public long readConfig(int offset, int sizeBytes) {
        long all = Integer.toUnsignedLong(tag) | Integer.toUnsignedLong(MAGIC) << 32;
        return all >>> (8 * offset);
    }

    @Override
    public boolean writeConfig(int offset, int sizeBytes, long value) {
        if (offset != 0 || sizeBytes != 4) {
            return false;
        }
        tag = (int) value;
        return true;
    }

    @Override
    public void activate(DeviceContext context, long negotiatedFeatures, List<VirtqueueDevice> queues) {
        this.context = context;
        this.queues = queues;
        this.negotiated = negotiatedFeatures;
        activations.incrementAndGet();
    }

    @Override
    public void queueNotified(int index) {
        VirtqueueDevice q = queues.get(index);
        try {
            DescriptorChain chain;
            while ((chain = q.pop()) != null) {
                heads.add(chain.head());
                if (hold) {
                    continue;
                }
                byte[] data = new byte[(int) chain.readableBytes()];
                chain.readFrom(0, MemorySegment.ofArray(data));
                for (int i = 0, j = data.length - 1; i < j; i++, j--) {
                    byte t = data[i];
                    data[i] = data[j];
                    data[j] = t;
                }
                q.addUsed(chain, chain.writeTo(0, MemorySegment.ofArray(data)));
            }
        } catch (RuntimeException e) {
            faults.add(e.getMessage());
            throw e;
        } finally {
            q.publishUsed();
            if (q.needsInterrupt()) {
                context.signalUsedBuffers(index);
            }
        }
    }

    @Override
    public void reset() {
        queues = null;
        resets.incrementAndGet();
    }

    int tag() {
        return tag;
    }
}
