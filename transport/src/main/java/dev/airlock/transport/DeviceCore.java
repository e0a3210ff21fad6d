package dev.airlock.transport;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.DeviceStatusMachine;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioProtocolException;
import dev.airlock.virtio.VirtqueueDevice;
import dev.airlock.virtio.Virtqueues;

import java.util.Arrays;
import java.util.Collections;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The transport-independent device side of one device: the status machine, the queues the driver
 * enabled, the interrupt status and configuration generation, and the model. msgq-mmio and
 * shmem-doorbell translate their wire formats into calls on this class.
 *
 * <p>Threading: every method except the {@link DeviceContext} ones runs with {@link #lock} held:
 * on the device host's interrupt thread, on the thread closing the host, or (for
 * {@link #callModel} in {@link NotificationMode#POLLING}) on the device's {@link QueuePoller}. So
 * the model is called by one thread at a time. The context methods are thread-safe.
 */
final class DeviceCore implements DeviceContext, DeviceStatusMachine.Listener {
    /** What the wire side of the transport does for the core. */
    interface Signals {
        /** Rings one bit of this device's slot on the driver's doorbell. */
        void ring(int bit);

        /** Status, queues or configuration changed (shmem-doorbell republishes its header). */
        void stateChanged();

        /** The device was reset: the transport clears its own registers. */
        void reset();
    }

    private static final RateLimitedLog LOG = new RateLimitedLog(DeviceCore.class);

    /** Held around every call into the core and the model but the context methods (see the class comment). */
    final ReentrantLock lock = new ReentrantLock();
    private final String name;
    private final VirtioDeviceModel model;
    private final NotificationMode mode;
    private final PollingPolicy pollingPolicy;
    private final GuestAddressSpace dmaView;
    private final DeviceStatusMachine status;
    private final VirtqueueDevice[] queues;
    /** Each enabled queue's avail and used ring addresses, for the poller. */
    private final long[] availAddrs;
    private final AtomicInteger interruptStatus = new AtomicInteger();
    private final AtomicInteger configGeneration = new AtomicInteger();
    private final AtomicLong faults = new AtomicLong();
    private volatile VirtioFault lastFault;
    private volatile Signals signals;
    private boolean active;
    /** Non-null while the device is active in POLLING mode. */
    private volatile QueuePoller poller;

    DeviceCore(String name, VirtioDeviceModel model, GuestAddressSpace dmaView, NotificationMode mode,
               PollingPolicy pollingPolicy) {
        this.name = Objects.requireNonNull(name, "name");
        this.model = Objects.requireNonNull(model, "model");
        this.mode = Objects.requireNonNull(mode, "mode");
        this.pollingPolicy = Objects.requireNonNull(pollingPolicy, "pollingPolicy");
        this.dmaView = Objects.requireNonNull(dmaView, "dmaView");
        int count = model.queueCount();
        if (count < 1 || count > DoorbellFlagsLayout.MAX_QUEUES) {
            throw new IllegalArgumentException("device '" + name + "' has " + count + " queues; 1 to "
                    + DoorbellFlagsLayout.MAX_QUEUES + " are supported");
        }
        for (int q = 0; q < count; q++) {
            if (!Virtqueues.isValidQueueSize(model.maxQueueSize(q))) {
                throw new IllegalArgumentException("device '" + name + "' queue " + q + ": bad max size " + model.maxQueueSize(q));
            }
        }
        if (model.configSizeBytes() < 0 || model.configSizeBytes() > ShmemHeaderLayout.CONFIG_LENGTH) {
            throw new IllegalArgumentException("device '" + name + "': config size " + model.configSizeBytes());
        }
        this.status = new DeviceStatusMachine(name, model.deviceFeatures(), this);
        this.queues = new VirtqueueDevice[count];
        this.availAddrs = new long[count];
    }

    void bind(Signals wire) {
        this.signals = wire;
    }

    VirtioDeviceModel model() {
        return model;
    }

    DeviceStatusMachine statusMachine() {
        return status;
    }

    /** The running poller, or null (for tests and diagnostics). */
    QueuePoller poller() {
        return poller;
    }

    int queueCount() {
        return queues.length;
    }

    boolean queueReady(int queue) {
        return queue >= 0 && queue < queues.length && queues[queue] != null;
    }

    int interruptStatus() {
        return interruptStatus.get();
    }

    int configGeneration() {
        return configGeneration.get();
    }

    long faultCount() {
        return faults.get();
    }

    VirtioFault lastFault() {
        return lastFault;
    }

    /** Records a protocol violation that does not need a reset (the access is simply refused). */
    void refuse(String field, long value, String reason) {
        VirtioFault fault = new VirtioFault(name, field, value, reason);
        lastFault = fault;
        faults.incrementAndGet();
        LOG.warn("refused: " + fault.message());
    }

    // ---- driver operations -------------------------------------------------------------------

    int writeStatus(int value) {
        DeviceStatusMachine.WriteResult result = status.writeStatus(value);
        signals.stateChanged();
        if (result == DeviceStatusMachine.WriteResult.REJECTED) {
            refuse("status", Integer.toUnsignedLong(value), status.lastFault() != null ? status.lastFault().reason() : "rejected");
            return TransportStatus.REJECTED;
        }
        return TransportStatus.OK;
    }

    int writeDriverFeaturesWord(int select, int value) {
        if (!status.writeDriverFeaturesWord(select, value)) {
            refuse("driver_features", Integer.toUnsignedLong(value), "outside the DRIVER .. FEATURES_OK window");
            return TransportStatus.REJECTED;
        }
        return TransportStatus.OK;
    }

    /**
     * Enables a queue: checks the size and builds the device side over the device's DMA view, which
     * holds only this device's shared region, so ring addresses outside it are refused.
     */
    int enableQueue(int queue, int size, long descAddr, long availAddr, long usedAddr) {
        int s = status.status();
        if (queue < 0 || queue >= queues.length) {
            refuse("queue_sel", Integer.toUnsignedLong(queue), "no such queue (device has " + queues.length + ")");
            return TransportStatus.REJECTED;
        }
        if ((s & DeviceStatus.FEATURES_OK) == 0 || (s & (DeviceStatus.DRIVER_OK | DeviceStatus.FAILED)) != 0
                || queues[queue] != null) {
            refuse("queue_ready", queue, "queue set-up needs FEATURES_OK, not DRIVER_OK, and a disabled queue; status is "
                    + DeviceStatus.describe(s));
            return TransportStatus.REJECTED;
        }
        if (!Virtqueues.isValidQueueSize(size) || size > model.maxQueueSize(queue)) {
            refuse("queue_num", Integer.toUnsignedLong(size), "not a power of two up to QueueNumMax " + model.maxQueueSize(queue));
            return TransportStatus.REJECTED;
        }
        try {
            queues[queue] = new VirtqueueDevice(name + ".q" + queue, dmaView, size, descAddr, availAddr, usedAddr,
                    status.negotiatedFeatures());
            availAddrs[queue] = availAddr;
        } catch (VirtioProtocolException e) {
            reportFault(e.fault());
            return TransportStatus.REJECTED;
        }
        signals.stateChanged();
        return TransportStatus.OK;
    }

    int queueNotified(int queue) {
        if (queue < 0 || queue >= queues.length) {
            refuse("queue_notify", Integer.toUnsignedLong(queue), "no such queue (device has " + queues.length + ")");
            return TransportStatus.REJECTED;
        }
        if (!active || queues[queue] == null) {
            return TransportStatus.OK; // a notification before DRIVER_OK or for a disabled queue: nothing to do
        }
        QueuePoller p = poller;
        if (p != null) {
            p.wake(); // polled: the poller sees the avail idx move and calls the model on its own thread
            return TransportStatus.OK;
        }
        callModel(queue);
        return TransportStatus.OK;
    }

    /** Calls the model's queueNotified for an enabled queue of an active device; a failure sets DEVICE_NEEDS_RESET. */
    void callModel(int queue) {
        if (!active || queues[queue] == null) {
            return;
        }
        try {
            model.queueNotified(queue);
        } catch (VirtioProtocolException e) {
            reportFault(e.fault());
        } catch (RuntimeException e) {
            reportFault(new VirtioFault(name, "queue[" + queue + "]", 0, "device model failed: " + e));
        }
    }

    void ackInterrupt(int bits) {
        interruptStatus.getAndUpdate(v -> v & ~bits);
    }

    /** Checks a configuration access; returns a status code (OK if allowed). */
    int checkConfigAccess(int offset, int sizeBytes) {
        if (sizeBytes != 1 && sizeBytes != 2 && sizeBytes != 4) {
            refuse("config.size", sizeBytes, "config accesses are 1, 2 or 4 bytes");
            return TransportStatus.BAD_SIZE;
        }
        if (offset < 0 || (offset & (sizeBytes - 1)) != 0 || offset > model.configSizeBytes() - sizeBytes) {
            refuse("config.offset", Integer.toUnsignedLong(offset), "outside the " + model.configSizeBytes()
                    + "-byte configuration space or misaligned for " + sizeBytes + " bytes");
            return TransportStatus.BAD_OFFSET;
        }
        return TransportStatus.OK;
    }

    long readConfig(int offset, int sizeBytes) {
        long mask = sizeBytes == 4 ? 0xffff_ffffL : (1L << (8 * sizeBytes)) - 1;
        return model.readConfig(offset, sizeBytes) & mask;
    }

    int writeConfig(int offset, int sizeBytes, long value) {
        int check = checkConfigAccess(offset, sizeBytes);
        if (check != TransportStatus.OK) {
            return check;
        }
        if (!model.writeConfig(offset, sizeBytes, value)) {
            refuse("config[" + offset + "]", value, "not writable");
            return TransportStatus.REJECTED;
        }
        signals.stateChanged();
        return TransportStatus.OK;
    }

    /** The driver's VM is gone (or the host closes): reset as if the driver had written 0. */
    void peerGone() {
        status.writeStatus(0);
    }

    // ---- DeviceStatusMachine.Listener --------------------------------------------------------

    @Override
    public boolean acceptFeatures(long driverFeatures) {
        return model.acceptFeatures(driverFeatures);
    }

    @Override
    public void onDriverOk(long negotiatedFeatures) {
        active = true;
        try {
            model.activate(this, negotiatedFeatures, Collections.unmodifiableList(Arrays.asList(queues.clone())));
        } catch (RuntimeException e) {
            reportFault(new VirtioFault(name, "status", DeviceStatus.DRIVER_OK, "device model failed to activate: " + e));
            return;
        }
        if (mode == NotificationMode.POLLING) {
            poller = QueuePoller.start(this, lock, pollingPolicy, queues, availAddrs, dmaView);
        }
    }

    @Override
    public void onReset() {
        QueuePoller p = poller;
        if (p != null) {
            poller = null;
            p.stop(); // before model.reset(): the model is not called after it, and the rings stay mapped until it ends
        }
        if (active) {
            active = false;
            try {
                model.reset();
            } catch (RuntimeException e) {
                LOG.warn("device '" + name + "': model reset failed: " + e);
            }
        }
        Arrays.fill(queues, null);
        Arrays.fill(availAddrs, 0);
        interruptStatus.set(0);
        lastFault = null;
        Signals wire = signals;
        if (wire != null) {
            wire.reset();
        }
    }

    // ---- DeviceContext -----------------------------------------------------------------------

    @Override
    public String name() {
        return name;
    }

    @Override
    public NotificationMode notificationMode() {
        return mode;
    }

    @Override
    public void signalUsedBuffers(int queue) {
        interruptStatus.getAndUpdate(v -> v | 1);
        signals.ring(DoorbellFlagsLayout.USED_BUFFER_BIT);
    }

    @Override
    public void configChanged() {
        configGeneration.incrementAndGet();
        signals.stateChanged();
        interruptStatus.getAndUpdate(v -> v | 2);
        signals.ring(DoorbellFlagsLayout.CONFIG_CHANGE_BIT);
    }

    @Override
    public void reportFault(VirtioFault fault) {
        lastFault = fault;
        faults.incrementAndGet();
        LOG.warn("device needs reset: " + fault.message());
        boolean notify = status.setNeedsReset(fault);
        signals.stateChanged();
        if (notify) {
            interruptStatus.getAndUpdate(v -> v | 2);
            signals.ring(DoorbellFlagsLayout.CONFIG_CHANGE_BIT);
        }
    }
}
