package dev.airlock.vhostuser;

import dev.airlock.transport.DeviceContext;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtioProtocolException;
import dev.airlock.virtio.VirtqAvailLayout;
import dev.airlock.virtio.VirtqDescLayout;
import dev.airlock.virtio.VirtqUsedLayout;
import dev.airlock.virtio.VirtqueueDevice;

import java.util.Arrays;
import java.util.List;

/**
 * Runs one {@link VirtioDeviceModel} for one vhost-user connection: the vrings, the memory table,
 * the kick thread, and the mapping of ring start/stop onto the model's lifecycle.
 *
 * <p><b>Lifecycle mapping.</b> A ring is <i>started</i> once it has a size, addresses and a kick fd
 * (and memory), and is stopped by GET_VRING_BASE; it is <i>running</i> while started and enabled
 * (without VHOST_USER_F_PROTOCOL_FEATURES a started ring is enabled at once). Whenever the set of
 * running rings changes, the model is reset (if active) and activated again with the running
 * rings (null for the others), then notified once per running ring, which picks up work made
 * available before the ring ran and chains handed back by inflight recovery. {@link VirtqueueDevice}
 * objects live as long as their ring is started, so positions carry across such re-activations.
 *
 * <p><b>Threading.</b> Control methods run on the connection thread; kicks arrive on the
 * {@link KickPoller} thread. Every model call except {@code readConfig} is made under one lock, so
 * the model sees one call at a time, as {@link VirtioDeviceModel} requires.
 */
final class DeviceRunner implements DeviceContext {
    private static final System.Logger LOG = System.getLogger(DeviceRunner.class.getName());
    /** Transport features this back-end cannot provide: never offered, whatever the model says. */
    private static final long UNSUPPORTED_FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_ACCESS_PLATFORM,
            VirtioFeatures.VIRTIO_F_RING_PACKED, VirtioFeatures.VIRTIO_F_IN_ORDER, VirtioFeatures.VIRTIO_F_NOTIFICATION_DATA,
            VirtioFeatures.VIRTIO_F_RING_RESET, VirtioFeatures.VIRTIO_F_ADMIN_VQ, VirtioFeatures.VIRTIO_F_SR_IOV,
            VhostUserRequest.F_LOG_ALL, VhostUserRequest.F_PROTOCOL_FEATURES);

    private final String name;
    private final VirtioDeviceModel model;
    private final Vring[] rings;
    private final KickPoller poller;
    private final Object modelLock = new Object();
    private final GuestMemoryTable memory;
    private InflightBuffer inflight;
    private long features;
    private boolean protocolFeaturesAcked;
    private boolean active;
    private boolean configChangeLogged;

    DeviceRunner(String name, VirtioDeviceModel model) {
        this.name = name;
        this.model = model;
        int count = model.queueCount();
        this.rings = new Vring[count];
        for (int q = 0; q < count; q++) {
            rings[q] = new Vring(q);
        }
        this.memory = new GuestMemoryTable(name);
        this.poller = new KickPoller(name, count, this::kicked);
        poller.start();
    }

    VirtioDeviceModel model() {
        return model;
    }

    GuestMemoryTable memory() {
        return memory;
    }

    int queueCount() {
        return rings.length;
    }

    /** The features offered: the model's, minus what this transport cannot do, plus PROTOCOL_FEATURES. */
    long offeredFeatures() {
        return model.deviceFeatures() & ~UNSUPPORTED_FEATURES | VirtioFeatures.bit(VhostUserRequest.F_PROTOCOL_FEATURES);
    }

    boolean protocolFeaturesAcked() {
        return protocolFeaturesAcked;
    }

    void setFeatures(String field, long acked) {
        if ((acked & ~offeredFeatures()) != 0) {
            throw new VhostUserProtocolException(field, acked, "acknowledges features not offered: "
                    + VirtioFeatures.describe(acked & ~offeredFeatures()));
        }
        long deviceFeatures = acked & ~VirtioFeatures.bit(VhostUserRequest.F_PROTOCOL_FEATURES);
        if (anyStarted() && deviceFeatures != features) {
            throw new VhostUserProtocolException(field, acked, "features changed while rings are started");
        }
        if (!model.acceptFeatures(deviceFeatures)) {
            throw new VhostUserProtocolException(field, acked, "the device refuses this combination of features");
        }
        features = deviceFeatures;
        protocolFeaturesAcked = VirtioFeatures.has(acked, VhostUserRequest.F_PROTOCOL_FEATURES);
    }

    Vring ring(String field, long index) {
        if (index < 0 || index >= rings.length) {
            throw new VhostUserProtocolException(field, index, "queue index not below the queue count " + rings.length);
        }
        return rings[(int) index];
    }

    private static void requireStopped(String field, Vring ring) {
        if (ring.queue != null) {
            throw new VhostUserProtocolException(field, ring.index, "ring is started; stop it with GET_VRING_BASE first");
        }
    }

    void setNum(String field, Vring ring, long num) {
        requireStopped(field, ring);
        int max = model.maxQueueSize(ring.index);
        if (num < 1 || num > max || Long.bitCount(num) != 1) {
            throw new VhostUserProtocolException(field, num, "not a power of two from 1 to " + max);
        }
        ring.num = (int) num;
    }

    void setAddr(String field, Vring ring, int flags, long desc, long used, long avail) {
        requireStopped(field, ring);
        if (flags != 0) {
            throw new VhostUserProtocolException(field + ".flags", Integer.toUnsignedLong(flags), "VHOST_VRING_F_LOG and reserved bits are not supported");
        }
        checkAligned(field + ".desc_user_addr", desc, VirtqDescLayout.TABLE_ALIGNMENT);
        checkAligned(field + ".used_user_addr", used, VirtqUsedLayout.ALIGNMENT);
        checkAligned(field + ".avail_user_addr", avail, VirtqAvailLayout.ALIGNMENT);
        ring.descUva = desc;
        ring.usedUva = used;
        ring.availUva = avail;
        ring.addrSet = true;
        if (ring.num > 0 && memory.regionCount() > 0) {
            ringGpas(field, ring); // rejects rings outside the memory table now rather than at start
        }
    }

    private static void checkAligned(String field, long address, int alignment) {
        if ((address & (alignment - 1)) != 0) {
            throw new VhostUserProtocolException(field, address, "not " + alignment + "-byte aligned");
        }
    }

    private long[] ringGpas(String field, Vring ring) {
        return new long[] {
            memory.uvaToGpa(field + ".desc_user_addr", ring.descUva, VirtqDescLayout.tableLengthBytes(ring.num)),
            memory.uvaToGpa(field + ".avail_user_addr", ring.availUva, VirtqAvailLayout.lengthBytes(ring.num)),
            memory.uvaToGpa(field + ".used_user_addr", ring.usedUva, VirtqUsedLayout.lengthBytes(ring.num))
        };
    }

    void setBase(String field, Vring ring, long base) {
        requireStopped(field, ring);
        if (base < 0 || base > 0xffff) {
            throw new VhostUserProtocolException(field, base, "not a 16-bit split-ring index");
        }
        ring.base = (int) base;
    }

    /** GET_VRING_BASE: stops the ring and returns the avail position of the next chain. */
    int stopRing(Vring ring) {
        VirtqueueDevice queue = ring.queue;
        if (queue != null) {
            ring.queue = null;
            ring.kickSet = false;
            poller.setKickFd(ring.index, -1);
            updateRunning();
            ring.base = queue.nextAvail();
        }
        return ring.base;
    }

    void setKick(String field, Vring ring, int fd) {
        poller.setKickFd(ring.index, fd);
        ring.kickSet = true;
        if (!protocolFeaturesAcked) {
            ring.enabled = true;
        }
        if (ring.queue == null) {
            tryStart(field, ring);
        }
        updateRunning();
    }

    void setEnable(Vring ring, boolean enable) {
        ring.enabled = enable;
        updateRunning();
    }

    /** Applies a memory table change; started rings are rebuilt over the new mappings at their positions. */
    void changeMemory(Runnable change) {
        boolean stopped = false;
        for (Vring ring : rings) {
            if (ring.queue != null) {
                ring.base = ring.queue.nextAvail();
                ring.queue = null;
                stopped = true;
            }
        }
        if (stopped) {
            updateRunning();
        }
        change.run();
        for (Vring ring : rings) {
            if (ring.queue == null && ring.kickSet) {
                tryStart("memory table", ring); // also rings whose kick came before any memory
            }
        }
        updateRunning();
    }

    /** Creates the ring's queue if it has everything it needs. */
    private void tryStart(String field, Vring ring) {
        if (ring.num == 0 || !ring.addrSet || !ring.kickSet || memory.regionCount() == 0) {
            return;
        }
        long[] gpa = ringGpas(field, ring);
        String queueName = name + ".q" + ring.index;
        try {
            VirtqueueDevice queue = new VirtqueueDevice(queueName, memory.space(), ring.num, gpa[0], gpa[1], gpa[2], features);
            InflightQueue tracker = inflight == null ? null : inflight.queue(ring.index, "inflight.queue" + ring.index);
            if (tracker != null && ring.num > tracker.descNum()) {
                throw new VhostUserProtocolException("SET_INFLIGHT_FD.queue_size", tracker.descNum(),
                        "smaller than the size " + ring.num + " of ring " + ring.index);
            }
            if (tracker != null) {
                int usedIdx = queue.readUsedIdx(); // read once: the recovery and the queue start from the same value
                int[] heads = tracker.recover(usedIdx);
                queue.startAt((usedIdx + heads.length) & 0xffff, usedIdx);
                for (int head : heads) {
                    queue.resubmit(head);
                }
                queue.setInflightTracker(tracker);
                if (heads.length > 0) {
                    LOG.log(System.Logger.Level.INFO, queueName + ": resubmitting " + heads.length + " in-flight chains");
                }
            } else {
                queue.startAt(ring.base);
            }
            ring.queue = queue;
        } catch (VirtioProtocolException e) {
            throw new VhostUserProtocolException(field + " (" + e.fault().field() + ")", e.fault().value(), e.fault().reason());
        }
    }

    private boolean anyStarted() {
        for (Vring ring : rings) {
            if (ring.queue != null) {
                return true;
            }
        }
        return false;
    }

    /** Re-activates the model if the set of running rings changed. */
    private void updateRunning() {
        synchronized (modelLock) {
            boolean changed = false;
            for (Vring ring : rings) {
                boolean run = ring.queue != null && ring.enabled;
                changed |= run != ring.running;
            }
            if (!changed) {
                return;
            }
            deactivate();
            List<VirtqueueDevice> queues = Arrays.asList(new VirtqueueDevice[rings.length]);
            boolean any = false;
            for (Vring ring : rings) {
                ring.running = ring.queue != null && ring.enabled;
                if (ring.running) {
                    queues.set(ring.index, ring.queue);
                    any = true;
                }
            }
            if (!any) {
                return;
            }
            model.activate(this, features, queues);
            active = true;
            for (Vring ring : rings) {
                if (ring.running) {
                    notifyModel(ring.index);
                }
            }
        }
    }

    private void deactivate() {
        if (active) {
            active = false;
            model.reset();
        }
    }

    /** A kick (kick thread). */
    private void kicked(int queue) {
        synchronized (modelLock) {
            if (active && rings[queue].running) {
                notifyModel(queue);
            }
        }
    }

    private void notifyModel(int queue) {
        try {
            model.queueNotified(queue);
        } catch (RuntimeException e) {
            VhostUserLog.warn(name + ".q" + queue + ": device fault: " + e.getMessage());
            rings[queue].error();
        }
    }

    /** Writes the configuration space under the model lock; false if the model refused a field. */
    boolean writeConfig(int offset, int sizeBytes, long value) {
        synchronized (modelLock) {
            return model.writeConfig(offset, sizeBytes, value);
        }
    }

    void setInflight(InflightBuffer buffer) {
        if (anyStarted()) {
            buffer.close();
            throw new VhostUserProtocolException("SET_INFLIGHT_FD", 0, "rings are started");
        }
        if (inflight != null) {
            inflight.close();
        }
        inflight = buffer;
    }

    /** RESET_DEVICE / RESET_OWNER: stops every ring and forgets the negotiated state. */
    void resetDevice() {
        for (Vring ring : rings) {
            if (ring.queue != null) {
                poller.setKickFd(ring.index, -1);
            }
            ring.clearConfiguration();
        }
        updateRunning();
        features = 0;
        protocolFeaturesAcked = false;
        if (inflight != null) {
            inflight.close();
            inflight = null;
        }
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public void signalUsedBuffers(int queue) {
        rings[queue].call();
    }

    @Override
    public void configChanged() {
        if (!configChangeLogged) {
            configChangeLogged = true;
            LOG.log(System.Logger.Level.WARNING, name + ": configuration changed, but vhost-user has no back-end request channel here"
                    + " (BACKEND_REQ is not offered); the front-end sees it at its next GET_CONFIG");
        }
    }

    @Override
    public void reportFault(VirtioFault fault) {
        VhostUserLog.warn(name + ": device fault: " + fault.message());
        for (Vring ring : rings) {
            VirtqueueDevice queue = ring.queue;
            if (queue != null && queue.name().equals(fault.source())) {
                ring.error();
                return;
            }
        }
        for (Vring ring : rings) {
            ring.error();
        }
    }

    /**
     * Resets the model, stops the kick thread, unmaps memory and closes every fd; a model that is
     * {@link AutoCloseable} (made for this connection by the back-end's supplier) is closed last.
     */
    void close() {
        synchronized (modelLock) {
            try {
                deactivate();
            } catch (RuntimeException e) {
                VhostUserLog.warn(name + ": model reset failed: " + e);
            }
        }
        poller.close();
        for (Vring ring : rings) {
            ring.closeFds();
            ring.queue = null;
        }
        memory.close();
        if (inflight != null) {
            inflight.close();
            inflight = null;
        }
        if (model instanceof AutoCloseable closeable) {
            try {
                closeable.close();
            } catch (Exception e) {
                VhostUserLog.warn(name + ": closing the device failed: " + e);
            }
        }
    }
}
