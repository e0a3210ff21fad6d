package dev.airlock.devices.console;

import dev.airlock.transport.TransportException;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDriver;

import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The console device's frontend driver (VIRTIO 1.2 §5.3), for an application in the secondary VM:
 * an {@link InputStream} of what the device puts on the receiveq and an {@link OutputStream} to the
 * transmitq, for port 0.
 *
 * <p>The driver keeps {@link #RX_BUFFERS} receive buffers of {@link #BUFFER_BYTES} posted, and
 * sends through up to {@link #TX_BUFFERS} transmit buffers (fewer if the device's queues are smaller), all in the guest's private RAM (the
 * slice given to the constructor); {@link VirtqueueDriver#add} bounces every buffer through the
 * swiotlb pool in the shared region. A receive buffer is posted again as soon as the application
 * has read it.
 *
 * <p><b>Threading.</b> One thread may read while another writes: each stream serializes its own
 * callers and owns its queue. Interrupts only wake them.
 */
public final class Console implements AutoCloseable {
    /** Bytes per buffer, receive and transmit. */
    public static final int BUFFER_BYTES = 4096;
    /** Receive buffers kept posted. */
    public static final int RX_BUFFERS = 16;
    /** Transmit buffers in flight at most. */
    public static final int TX_BUFFERS = 16;
    /** Private RAM the driver needs for its buffers. */
    public static final long RAM_BYTES = (long) BUFFER_BYTES * (RX_BUFFERS + TX_BUFFERS);
    /** Features the driver accepts. */
    public static final long SUPPORTED_FEATURES = ConsoleDevice.RING_FEATURES
            | VirtioFeatures.of(ConsoleDevice.VIRTIO_CONSOLE_F_SIZE, ConsoleDevice.VIRTIO_CONSOLE_F_EMERG_WRITE);
    private static final long RX_BASE = 0;
    private static final long TX_BASE = (long) BUFFER_BYTES * RX_BUFFERS;

    /**
     * A console size.
     *
     * @param cols columns
     * @param rows rows
     */
    public record Size(int cols, int rows) { }

    private final VirtioFrontend frontend;
    private final MemorySegment ram;
    private final long ramGpa;
    private final long features;
    private final ConsoleMetrics metrics = new ConsoleMetrics();
    private final ReentrantLock signalLock = new ReentrantLock();
    private final Condition signalled = signalLock.newCondition();
    private final ReentrantLock controlLock = new ReentrantLock(); // status and configuration accesses
    private final Input input = new Input();
    private final Output output = new Output();
    private long usedEpoch;   // guarded by signalLock
    private long configEpoch; // guarded by signalLock
    private volatile boolean closed;

    /**
     * Initialises the device (§3.1.1) and posts the receive buffers.
     *
     * @param frontend the device's frontend, not yet initialised (or reset)
     * @param ram      at least {@link #RAM_BYTES} of the guest's private RAM, for the buffers
     * @param ramGpa   the guest-physical address of {@code ram}
     * @throws TransportException       if the device is not a console or refuses the driver
     * @throws IllegalArgumentException if {@code ram} is too small
     */
    public Console(VirtioFrontend frontend, MemorySegment ram, long ramGpa) {
        this.frontend = Objects.requireNonNull(frontend, "frontend");
        if (ram.byteSize() < RAM_BYTES) {
            throw new IllegalArgumentException("the driver needs " + RAM_BYTES + " bytes of RAM, got " + ram.byteSize());
        }
        this.ram = ram.asSlice(0, RAM_BYTES);
        this.ramGpa = ramGpa;
        frontend.setListener(new VirtioFrontend.Listener() {
            @Override
            public void onUsedBuffers() {
                signal(false);
            }

            @Override
            public void onConfigChange() {
                signal(true);
            }
        });
        this.features = frontend.initialize(ConsoleDevice.DEVICE_ID, SUPPORTED_FEATURES, RX_BUFFERS, TX_BUFFERS);
        input.postAll(Math.min(RX_BUFFERS, frontend.queue(ConsoleDevice.RECEIVEQ).size()));
        output.setUp(Math.min(TX_BUFFERS, frontend.queue(ConsoleDevice.TRANSMITQ).size()));
    }

    /** On the interrupt thread: wakes waiting readers and writers. */
    private void signal(boolean config) {
        signalLock.lock();
        try {
            usedEpoch++;
            if (config) {
                configEpoch++;
            }
            signalled.signalAll();
        } finally {
            signalLock.unlock();
        }
    }

    private long usedEpoch() {
        signalLock.lock();
        try {
            return usedEpoch;
        } finally {
            signalLock.unlock();
        }
    }

    /**
     * What the device sends the guest.
     *
     * @return the stream; {@code read} blocks until input arrives and returns -1 once closed
     */
    public InputStream input() {
        return input;
    }

    /**
     * What the guest sends the device. {@code write} returns once the bytes are queued;
     * {@code flush} waits until the device has taken them all.
     *
     * @return the stream
     */
    public OutputStream output() {
        return output;
    }

    /**
     * The negotiated features.
     *
     * @return the bits
     */
    public long features() {
        return features;
    }

    /**
     * The driver's counters.
     *
     * @return the metrics
     */
    public ConsoleMetrics metrics() {
        return metrics;
    }

    /**
     * The console size, if the device reports one ({@code VIRTIO_CONSOLE_F_SIZE}); read afresh.
     *
     * @return the size, or null without the feature
     * @throws TransportException if the device does not answer
     */
    public Size size() {
        if (!VirtioFeatures.has(features, ConsoleDevice.VIRTIO_CONSOLE_F_SIZE)) {
            return null;
        }
        byte[] bytes = new byte[4];
        controlLock.lock();
        try {
            frontend.readConfig(ConsoleConfigLayout.COLS_OFFSET, bytes);
        } finally {
            controlLock.unlock();
        }
        return new Size((int) ConsoleConfigLayout.read(bytes, 0, 2), (int) ConsoleConfigLayout.read(bytes, 2, 2));
    }

    /**
     * Writes one byte through {@code emerg_wr}: straight to the port, without the queues.
     *
     * @param b the byte (low 8 bits)
     * @return false if the device does not offer {@code VIRTIO_CONSOLE_F_EMERG_WRITE}
     * @throws TransportException if the device refuses or does not answer
     */
    public boolean emergencyWrite(int b) {
        if (!VirtioFeatures.has(features, ConsoleDevice.VIRTIO_CONSOLE_F_EMERG_WRITE)) {
            return false;
        }
        controlLock.lock();
        try {
            frontend.writeConfig(ConsoleConfigLayout.EMERG_WR_OFFSET, 4, b & 0xff);
        } finally {
            controlLock.unlock();
        }
        return true;
    }

    /**
     * Waits for a used-buffer or configuration signal after {@code seen}. A configuration change
     * may mean DEVICE_NEEDS_RESET: then it throws.
     */
    private void await(long seen, long[] configChecked) throws IOException {
        long config;
        signalLock.lock();
        try {
            while (usedEpoch == seen && !closed) {
                // The timeout is a safety net only: every completion is signalled.
                if (!signalled.await(1, TimeUnit.SECONDS)) {
                    break;
                }
            }
            config = configEpoch;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted waiting for the console device");
        } finally {
            signalLock.unlock();
        }
        if (config != configChecked[0]) {
            configChecked[0] = config;
            checkStatus();
        }
    }

    private void checkUsable(VirtqueueDriver<?> q) throws IOException {
        if (q.isBroken()) {
            metrics.recordFault();
            throw new IOException("console queue broken: " + q.fault().message());
        }
    }

    private void checkStatus() throws IOException {
        controlLock.lock();
        try {
            if ((frontend.status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0) {
                throw new IOException("console device needs a reset");
            }
        } catch (TransportException e) {
            throw new IOException("console transport failed: " + e.getMessage(), e);
        } finally {
            controlLock.unlock();
        }
    }

    /** The receive side: owns the receiveq. */
    private final class Input extends InputStream {
        private final ReentrantLock lock = new ReentrantLock();
        private final ScatterGather sg = new ScatterGather(1);
        private final ArrayDeque<long[]> filled = new ArrayDeque<>(); // {slot, length} in used order
        private final long[] configChecked = {0};
        private int currentSlot = -1;
        private int currentPosition;
        private int currentLength;

        private VirtqueueDriver<Integer> queue() {
            return frontend.queue(ConsoleDevice.RECEIVEQ);
        }

        /** Posts the first {@code count} buffers (fewer than RX_BUFFERS if the device's queue is smaller). */
        void postAll(int count) {
            lock.lock();
            try {
                for (int slot = 0; slot < count; slot++) {
                    post(slot);
                }
                frontend.kick(ConsoleDevice.RECEIVEQ);
            } finally {
                lock.unlock();
            }
        }

        private void post(int slot) {
            long offset = RX_BASE + (long) slot * BUFFER_BYTES;
            sg.clear().in(ramGpa + offset, BUFFER_BYTES);
            if (!queue().add(sg, slot) && !queue().isBroken()) {
                throw new IllegalStateException("receiveq has no room for buffer " + slot + " of " + RX_BUFFERS);
            }
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            Objects.checkFromIndexSize(off, len, b.length);
            if (len == 0) {
                return 0;
            }
            lock.lock();
            try {
                while (true) {
                    if (closed) {
                        return -1;
                    }
                    if (currentSlot >= 0) {
                        return copyOut(b, off, len);
                    }
                    long seen = usedEpoch();
                    VirtqueueDriver<Integer> q = queue();
                    q.reap((slot, length) -> filled.add(new long[] {slot, length}), RX_BUFFERS);
                    checkUsable(q);
                    if (nextFilled()) {
                        continue;
                    }
                    if (q.enableCallbacks()) {
                        await(seen, configChecked);
                    }
                }
            } finally {
                lock.unlock();
            }
        }

        /** Takes the next filled buffer; empty ones go straight back to the device. */
        private boolean nextFilled() {
            long[] next;
            boolean reposted = false;
            while ((next = filled.poll()) != null) {
                if (next[1] > 0) {
                    currentSlot = (int) next[0];
                    currentPosition = 0;
                    currentLength = (int) next[1];
                    metrics.recordReceive(currentLength);
                    break;
                }
                post((int) next[0]);
                reposted = true;
            }
            if (reposted) {
                frontend.kick(ConsoleDevice.RECEIVEQ);
            }
            return currentSlot >= 0;
        }

        private int copyOut(byte[] b, int off, int len) {
            int n = Math.min(len, currentLength - currentPosition);
            long offset = RX_BASE + (long) currentSlot * BUFFER_BYTES + currentPosition;
            MemorySegment.copy(ram, java.lang.foreign.ValueLayout.JAVA_BYTE, offset, b, off, n);
            currentPosition += n;
            if (currentPosition == currentLength) {
                post(currentSlot);
                frontend.kick(ConsoleDevice.RECEIVEQ);
                currentSlot = -1;
            }
            return n;
        }

        @Override
        public int available() {
            lock.lock();
            try {
                long total = currentSlot >= 0 ? currentLength - currentPosition : 0;
                for (long[] f : filled) {
                    total += f[1];
                }
                return (int) Math.min(Integer.MAX_VALUE, total);
            } finally {
                lock.unlock();
            }
        }

        @Override
        public void close() {
            Console.this.close();
        }
    }

    /** The transmit side: owns the transmitq. */
    private final class Output extends OutputStream {
        private final ReentrantLock lock = new ReentrantLock();
        private final ScatterGather sg = new ScatterGather(1);
        private final ArrayDeque<Integer> freeSlots = new ArrayDeque<>();
        private final long[] configChecked = {0};
        private int slots;

        /** Uses the first {@code count} buffers (fewer than TX_BUFFERS if the device's queue is smaller). */
        void setUp(int count) {
            lock.lock();
            try {
                slots = count;
                for (int slot = 0; slot < count; slot++) {
                    freeSlots.add(slot);
                }
            } finally {
                lock.unlock();
            }
        }

        private VirtqueueDriver<Integer> queue() {
            return frontend.queue(ConsoleDevice.TRANSMITQ);
        }

        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            Objects.checkFromIndexSize(off, len, b.length);
            lock.lock();
            try {
                int done = 0;
                boolean added = false;
                while (done < len) {
                    checkOpen();
                    Integer slot = freeSlots.poll();
                    if (slot == null) {
                        if (added) {
                            frontend.kick(ConsoleDevice.TRANSMITQ);
                            added = false;
                        }
                        awaitCompletions();
                        continue;
                    }
                    int n = Math.min(len - done, BUFFER_BYTES);
                    long offset = TX_BASE + (long) slot * BUFFER_BYTES;
                    MemorySegment.copy(b, off + done, ram, java.lang.foreign.ValueLayout.JAVA_BYTE, offset, n);
                    sg.clear().out(ramGpa + offset, n);
                    if (!queue().add(sg, slot)) {
                        freeSlots.addFirst(slot);
                        checkUsable(queue());
                        throw new IllegalStateException("transmitq has no room for buffer " + slot + " of " + TX_BUFFERS);
                    }
                    metrics.recordTransmit(n);
                    done += n;
                    added = true;
                }
                if (added) {
                    frontend.kick(ConsoleDevice.TRANSMITQ);
                }
            } finally {
                lock.unlock();
            }
        }

        /** Waits until the device has taken every byte written so far. */
        @Override
        public void flush() throws IOException {
            lock.lock();
            try {
                while (freeSlots.size() < slots) {
                    checkOpen();
                    awaitCompletions();
                }
            } finally {
                lock.unlock();
            }
        }

        private void checkOpen() throws IOException {
            if (closed) {
                throw new IOException("console is closed");
            }
        }

        /** Reaps completed transmit buffers; waits for a signal if there are none. */
        private void awaitCompletions() throws IOException {
            long seen = usedEpoch();
            VirtqueueDriver<Integer> q = queue();
            int reaped = q.reap((slot, length) -> freeSlots.add(slot), TX_BUFFERS);
            checkUsable(q);
            if (reaped == 0 && q.enableCallbacks()) {
                await(seen, configChecked);
            }
        }

        @Override
        public void close() {
            Console.this.close();
        }
    }

    /**
     * Resets the device unless its transport is broken (buffers in flight are dropped); reads then
     * return -1 and writes fail.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        signal(false); // blocked readers and writers wake and see closed
        input.lock.lock();
        output.lock.lock();
        try {
            frontend.setListener(null);
            if (!frontend.transport().isBroken()) {
                frontend.reset();
            }
        } finally {
            output.lock.unlock();
            input.lock.unlock();
        }
    }
}
