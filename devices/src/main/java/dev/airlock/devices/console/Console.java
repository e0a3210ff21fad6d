package dev.airlock.devices.console;

import dev.airlock.transport.DriverTransport;
import dev.airlock.transport.TransportException;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDriver;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.Objects;
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
 * <p><b>Backend restart.</b> When the device's backend process dies, the transport is
 * {@linkplain DriverTransport#isDetached() detached}. Both streams then wait, as they wait for
 * input or for room on the transmitq: {@code read} returns what was already received and then
 * blocks; {@code write} and {@code flush} block once they need the device. The wait lasts as long
 * as the transport stays detached (vhost-user: at most its reconnect window; then the transport
 * breaks and the call throws {@link IOException}); it ends early on {@link #close} ({@code read}
 * returns -1, the others throw) or an interrupt ({@link java.io.InterruptedIOException}). When a new backend attaches, the first stream thread to look
 * resets and initialises the device again, checks that it negotiates the same features as the first
 * time (and has queues as large as the driver uses), posts the receive buffers again and gives the
 * device again, in their original order, every transmit buffer the old backend had not acknowledged.
 * Delivery of output is therefore at least once: {@code write} returning means the bytes will reach
 * a device (this one or the next), never that they are lost; but a buffer in flight when the backend
 * died may already have been written to the port, in whole or in part, and is then written again in
 * whole. So after a restart the port may see again the bytes of at most {@link #TX_BUFFERS} buffers
 * (each up to {@link #BUFFER_BYTES}, one per {@code write} call or part of one), in the order
 * written; the driver reorders and skips nothing. Input the old backend had put in a receive buffer
 * the driver had not yet taken back is lost with it; input already taken back is still read. {@link #size} and {@link #emergencyWrite} do not wait: while
 * detached they throw {@link TransportException}. A device that comes back with other features or
 * smaller queues, or that refuses the driver, fails both streams for good, as does a transport that
 * breaks (not detached), a queue protocol violation, or DEVICE_NEEDS_RESET.
 *
 * <p><b>Threading.</b> One thread may read while another writes: each stream serializes its own
 * callers. Queue operations, configuration accesses and the re-initialisation take a short device
 * lock ({@code ConsoleQueues}), never held while waiting. Interrupts only wake the streams.
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
    /** Where the receive buffers start in the driver's RAM. */
    static final long RX_BASE = 0;
    /** Where the transmit buffers start in the driver's RAM. */
    static final long TX_BASE = (long) BUFFER_BYTES * RX_BUFFERS;

    /**
     * A console size.
     *
     * @param cols columns
     * @param rows rows
     */
    public record Size(int cols, int rows) { }

    private final MemorySegment ram;
    private final ConsoleMetrics metrics = new ConsoleMetrics();
    private final ConsoleQueues queues;
    private final Input input = new Input();
    private final Output output = new Output();

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
        Objects.requireNonNull(frontend, "frontend");
        if (ram.byteSize() < RAM_BYTES) {
            throw new IllegalArgumentException("the driver needs " + RAM_BYTES + " bytes of RAM, got " + ram.byteSize());
        }
        this.ram = ram.asSlice(0, RAM_BYTES);
        this.queues = new ConsoleQueues(frontend, ramGpa, metrics);
        output.setUp(queues.txSlots());
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
        return queues.features();
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
     * @throws TransportException if the device does not answer or its backend is detached
     */
    public Size size() {
        if (!VirtioFeatures.has(queues.features(), ConsoleDevice.VIRTIO_CONSOLE_F_SIZE)) {
            return null;
        }
        byte[] bytes = new byte[4];
        queues.readConfig(ConsoleConfigLayout.COLS_OFFSET, bytes);
        return new Size((int) ConsoleConfigLayout.read(bytes, 0, 2), (int) ConsoleConfigLayout.read(bytes, 2, 2));
    }

    /**
     * Writes one byte through {@code emerg_wr}: straight to the port, without the queues.
     *
     * @param b the byte (low 8 bits)
     * @return false if the device does not offer {@code VIRTIO_CONSOLE_F_EMERG_WRITE}
     * @throws TransportException if the device refuses or does not answer, or its backend is detached
     */
    public boolean emergencyWrite(int b) {
        if (!VirtioFeatures.has(queues.features(), ConsoleDevice.VIRTIO_CONSOLE_F_EMERG_WRITE)) {
            return false;
        }
        queues.writeConfig(ConsoleConfigLayout.EMERG_WR_OFFSET, 4, b & 0xff);
        return true;
    }

    /** The receive side: takes what the device put on the receiveq. */
    private final class Input extends InputStream {
        private final ReentrantLock lock = new ReentrantLock();
        private final ArrayDeque<long[]> filled = new ArrayDeque<>(); // {slot, length} in used order
        private int currentSlot = -1;
        private int currentPosition;
        private int currentLength;

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
                    if (queues.isClosed()) {
                        return -1;
                    }
                    if (currentSlot >= 0) {
                        return copyOut(b, off, len);
                    }
                    long seen = queues.usedEpoch();
                    if (!turn()) {
                        queues.await(seen);
                    }
                }
            } finally {
                lock.unlock();
            }
        }

        /** Takes used buffers; returns false if the reader should wait for a signal. */
        private boolean turn() throws IOException {
            queues.lock.lock();
            try {
                if (nextFilled() || queues.isClosed()) {
                    return true; // input received before a detach is still read
                }
                if (!queues.ready(ConsoleDevice.RECEIVEQ)) {
                    return false;
                }
                VirtqueueDriver<Integer> q = queues.queue(ConsoleDevice.RECEIVEQ);
                q.reap((slot, length) -> filled.add(new long[] {slot, length}), RX_BUFFERS);
                if (nextFilled() || q.isBroken()) {
                    return true; // input, or the next turn says why the queue broke
                }
                return !q.enableCallbacks();
            } finally {
                queues.lock.unlock();
            }
        }

        /** Under the device lock: takes the next filled buffer; empty ones go straight back to the device. */
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
                queues.post((int) next[0]);
                reposted = true;
            }
            if (reposted) {
                queues.kick(ConsoleDevice.RECEIVEQ);
            }
            return currentSlot >= 0;
        }

        private int copyOut(byte[] b, int off, int len) {
            int n = Math.min(len, currentLength - currentPosition);
            long offset = RX_BASE + (long) currentSlot * BUFFER_BYTES + currentPosition;
            MemorySegment.copy(ram, ValueLayout.JAVA_BYTE, offset, b, off, n);
            currentPosition += n;
            if (currentPosition == currentLength) {
                queues.lock.lock();
                try {
                    queues.post(currentSlot);
                    queues.kick(ConsoleDevice.RECEIVEQ);
                } finally {
                    queues.lock.unlock();
                }
                currentSlot = -1;
            }
            return n;
        }

        @Override
        public int available() {
            if (!lock.tryLock()) {
                return 0; // a read holds the stream, waiting for input or copying it out: never block here
            }
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

    /** The transmit side: gives the device buffers on the transmitq. */
    private final class Output extends OutputStream {
        private final ReentrantLock lock = new ReentrantLock();
        private final ArrayDeque<Integer> freeSlots = new ArrayDeque<>();
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
                            kick();
                            added = false;
                        }
                        awaitCompletions();
                        continue;
                    }
                    int n = Math.min(len - done, BUFFER_BYTES);
                    MemorySegment.copy(b, off + done, ram, ValueLayout.JAVA_BYTE, TX_BASE + (long) slot * BUFFER_BYTES, n);
                    long seen = queues.usedEpoch();
                    boolean taken;
                    queues.lock.lock();
                    try {
                        taken = queues.transmit(slot, n);
                    } finally {
                        queues.lock.unlock();
                    }
                    if (!taken) {
                        freeSlots.addFirst(slot); // given to no device: not written
                        queues.await(seen);
                        continue;
                    }
                    metrics.recordTransmit(n);
                    done += n;
                    added = true;
                }
                if (added) {
                    kick();
                }
            } finally {
                lock.unlock();
            }
        }

        private void kick() {
            queues.lock.lock();
            try {
                queues.kick(ConsoleDevice.TRANSMITQ);
            } finally {
                queues.lock.unlock();
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
            if (queues.isClosed()) {
                throw new IOException("console is closed");
            }
        }

        /** Reaps completed transmit buffers; waits for a signal if there are none (or the backend is away). */
        private void awaitCompletions() throws IOException {
            long seen = queues.usedEpoch();
            boolean wait;
            queues.lock.lock();
            try {
                if (!queues.ready(ConsoleDevice.TRANSMITQ)) {
                    wait = true;
                } else {
                    VirtqueueDriver<Integer> q = queues.queue(ConsoleDevice.TRANSMITQ);
                    int reaped = q.reap((slot, length) -> freeSlots.add(slot), TX_BUFFERS);
                    wait = reaped == 0 && !q.isBroken() && q.enableCallbacks();
                }
            } finally {
                queues.lock.unlock();
            }
            if (wait) {
                queues.await(seen);
            }
        }

        @Override
        public void close() {
            Console.this.close();
        }
    }

    /**
     * Resets the device unless its transport is broken or detached (buffers in flight are dropped);
     * reads then return -1 and writes fail.
     */
    @Override
    public void close() {
        if (queues.isClosed()) {
            return;
        }
        queues.markClosed(); // blocked readers and writers wake and see closed
        input.lock.lock();
        output.lock.lock();
        try {
            queues.shutdown();
        } finally {
            output.lock.unlock();
            input.lock.unlock();
        }
    }
}
