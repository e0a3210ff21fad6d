package dev.airlock.devices.console;

import dev.airlock.transport.DeviceContext;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDevice;

import java.util.List;
import java.util.Objects;

/**
 * The console device backend (VIRTIO 1.2 §5.3, device id 3) with one port and no
 * {@code VIRTIO_CONSOLE_F_MULTIPORT}: the receiveq (0) carries input to the guest, the transmitq
 * (1) the guest's output. The port is connected to a {@link ConsoleEndpoint} (stdio, a Unix
 * socket, a file). Offers {@link #VIRTIO_CONSOLE_F_SIZE} when built with a size, and
 * {@link #VIRTIO_CONSOLE_F_EMERG_WRITE} always.
 *
 * <p><b>Threading.</b> Endpoint I/O runs on the port's two pump threads, which live as long as the
 * device (until {@link #close}). While the device is active each queue has one worker thread that
 * owns it; the transport's interrupt thread only wakes them from {@link #queueNotified}.
 * {@link #reset} stops both workers and returns once neither touches the rings. Input the guest
 * has not yet taken, and output not yet written, stay in the port across resets.
 *
 * <p><b>Untrusted driver.</b> The queues validate every chain; {@link ConsoleRequest} refuses a
 * device-readable buffer on the receiveq and a device-writable one on the transmitq. A violation
 * marks the queue broken and reports the fault (DEVICE_NEEDS_RESET); other devices and guests are
 * not affected.
 */
public final class ConsoleDevice implements VirtioDeviceModel, AutoCloseable {
    /** The virtio device id of a console (§5). */
    public static final int DEVICE_ID = 3;
    /** Index of receiveq (port 0): device to driver. */
    public static final int RECEIVEQ = 0;
    /** Index of transmitq (port 0): driver to device. */
    public static final int TRANSMITQ = 1;
    /** QueueNumMax of both queues. */
    public static final int MAX_QUEUE_SIZE = 256;
    /** Feature bit: the configuration's cols and rows are valid (§5.3.3). */
    public static final int VIRTIO_CONSOLE_F_SIZE = 0;
    /** Feature bit: several ports and the control queues (not offered). */
    public static final int VIRTIO_CONSOLE_F_MULTIPORT = 1;
    /** Feature bit: the driver may write characters through {@code emerg_wr} (§5.3.3). */
    public static final int VIRTIO_CONSOLE_F_EMERG_WRITE = 2;
    /** The ring features offered. */
    public static final long RING_FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1,
            VirtioFeatures.VIRTIO_F_EVENT_IDX, VirtioFeatures.VIRTIO_F_INDIRECT_DESC);
    private static final long OUTPUT_DRAIN_MS = 1000;

    private final ConsolePort port;
    private final ConsoleMetrics metrics = new ConsoleMetrics();
    private final long features;
    private final byte[] config = new byte[ConsoleConfigLayout.CONFIG_LENGTH]; // guarded by itself
    private volatile DeviceContext context;
    private ReceiveWorker receiver;     // interrupt thread only
    private TransmitWorker transmitter; // interrupt thread only
    private boolean closed;

    /**
     * Creates a console without a size ({@code VIRTIO_CONSOLE_F_SIZE} not offered) and starts the
     * port's pumps.
     *
     * @param endpoint what the port is connected to; the device closes it
     */
    public ConsoleDevice(ConsoleEndpoint endpoint) {
        this(endpoint, false, 0, 0);
    }

    /**
     * Creates a console with a size ({@code VIRTIO_CONSOLE_F_SIZE} offered) and starts the port's pumps.
     *
     * @param endpoint what the port is connected to; the device closes it
     * @param cols     columns, 0 to 65535
     * @param rows     rows, 0 to 65535
     * @throws IllegalArgumentException for a size out of range
     */
    public ConsoleDevice(ConsoleEndpoint endpoint, int cols, int rows) {
        this(endpoint, true, cols, rows);
    }

    private ConsoleDevice(ConsoleEndpoint endpoint, boolean size, int cols, int rows) {
        Objects.requireNonNull(endpoint, "endpoint");
        long f = RING_FEATURES | VirtioFeatures.bit(VIRTIO_CONSOLE_F_EMERG_WRITE);
        this.features = size ? f | VirtioFeatures.bit(VIRTIO_CONSOLE_F_SIZE) : f;
        ConsoleConfigLayout.write(config, ConsoleConfigLayout.MAX_NR_PORTS_OFFSET, 4, 1);
        if (size) {
            storeSize(cols, rows);
        }
        this.port = new ConsolePort(endpoint, metrics);
        port.start();
    }

    private void storeSize(int cols, int rows) {
        if (cols < 0 || cols > 0xffff || rows < 0 || rows > 0xffff) {
            throw new IllegalArgumentException("console size " + cols + "x" + rows + " outside 0..65535");
        }
        synchronized (config) {
            ConsoleConfigLayout.write(config, ConsoleConfigLayout.COLS_OFFSET, 2, cols);
            ConsoleConfigLayout.write(config, ConsoleConfigLayout.ROWS_OFFSET, 2, rows);
        }
    }

    /**
     * Changes the console size and sends the driver a configuration change notification (§5.3.4).
     * May be called from any thread.
     *
     * @param cols columns, 0 to 65535
     * @param rows rows, 0 to 65535
     * @throws IllegalStateException    if the device was built without a size
     * @throws IllegalArgumentException for a size out of range
     */
    public void resize(int cols, int rows) {
        if (!VirtioFeatures.has(features, VIRTIO_CONSOLE_F_SIZE)) {
            throw new IllegalStateException("this console does not offer VIRTIO_CONSOLE_F_SIZE");
        }
        storeSize(cols, rows);
        DeviceContext c = context;
        if (c != null) {
            c.configChanged(); // outside the config lock: the transport may call readConfig from here
        }
    }

    /**
     * The device's counters (kept across resets).
     *
     * @return the metrics
     */
    public ConsoleMetrics metrics() {
        return metrics;
    }

    /**
     * The endpoint the port is connected to.
     *
     * @return the endpoint
     */
    public ConsoleEndpoint endpoint() {
        return port.endpoint();
    }

    /** The port, for tests in this package. */
    ConsolePort port() {
        return port;
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
        return 2;
    }

    @Override
    public int maxQueueSize(int queue) {
        return MAX_QUEUE_SIZE;
    }

    @Override
    public int configSizeBytes() {
        return ConsoleConfigLayout.CONFIG_LENGTH;
    }

    @Override
    public long readConfig(int offset, int sizeBytes) {
        synchronized (config) {
            return ConsoleConfigLayout.read(config, offset, sizeBytes); // emerg_wr stays 0: write-only
        }
    }

    /**
     * Takes a write of {@code emerg_wr} (any size; the low byte is the character), allowed even
     * before feature negotiation (§5.3.4). It runs on the interrupt thread and cannot wait: when the
     * output buffer is full the byte is dropped and counted. Every other field is read-only.
     */
    @Override
    public boolean writeConfig(int offset, int sizeBytes, long value) {
        if (offset != ConsoleConfigLayout.EMERG_WR_OFFSET || !VirtioFeatures.has(features, VIRTIO_CONSOLE_F_EMERG_WRITE)) {
            return false;
        }
        metrics.recordEmergencyWrite(port.output.offer((byte) value));
        return true;
    }

    @Override
    public void activate(DeviceContext deviceContext, long negotiatedFeatures, List<VirtqueueDevice> queues) {
        stopWorkers();
        this.context = deviceContext;
        VirtqueueDevice receiveq = queues.get(RECEIVEQ);
        VirtqueueDevice transmitq = queues.get(TRANSMITQ);
        if (receiveq != null) {
            receiver = new ReceiveWorker(deviceContext, receiveq, port, metrics);
            receiver.start();
        }
        if (transmitq != null) {
            transmitter = new TransmitWorker(deviceContext, transmitq, port, metrics);
            transmitter.start();
        }
    }

    @Override
    public void queueNotified(int queue) {
        QueueWorker w = queue == RECEIVEQ ? receiver : queue == TRANSMITQ ? transmitter : null;
        if (w != null) {
            w.wake();
        }
    }

    /** Stops both workers and waits until neither touches the rings; the port keeps its bytes. */
    @Override
    public void reset() {
        stopWorkers();
        context = null;
    }

    private void stopWorkers() {
        if (receiver != null) {
            receiver.stop();
            receiver = null;
        }
        if (transmitter != null) {
            transmitter.stop();
            transmitter = null;
        }
    }

    /**
     * Closes the port: waits up to a second for buffered output to reach the endpoint, then closes
     * the endpoint and stops the pumps. Remove the device from its host (or reset it) first; a
     * guest still writing then has its output discarded.
     */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        try {
            port.drainOutput(OUTPUT_DRAIN_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        port.close();
    }

    @Override
    public String toString() {
        return "ConsoleDevice(" + port.endpoint().description() + ", " + VirtioFeatures.describe(features) + ")";
    }
}
