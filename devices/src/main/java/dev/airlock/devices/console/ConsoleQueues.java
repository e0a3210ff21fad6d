package dev.airlock.devices.console;

import dev.airlock.transport.DriverSignals;
import dev.airlock.transport.DriverTransport;
import dev.airlock.transport.TransportException;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDriver;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The {@link Console} driver's hold on the device: the frontend and its two queues behind one
 * device lock, the interrupt signals the streams wait on, and the re-initialisation after the
 * device's backend came back ({@link DriverTransport#isDetached()}, then
 * {@link VirtioFrontend.Listener#onReattached()}). The streams take {@link #lock} for each queue
 * step, never while waiting; the listener (the interrupt thread) only records and signals.
 *
 * <p>Receive buffers are slots {@code 0..rxSlots-1} at {@code Console.RX_BASE}, transmit buffers
 * slots {@code 0..txSlots-1} at {@code Console.TX_BASE}; a slot number is the token in its queue.
 * Every transmit buffer given to the device keeps its length and a sequence number until the
 * device returns it, so that the ones a vanished backend never returned can be given to the next
 * device in the order written.
 */
final class ConsoleQueues {
    /** Guards the frontend (queues, status, configuration), the fields below it, and the re-initialisation. */
    final ReentrantLock lock = new ReentrantLock();
    private final VirtioFrontend frontend;
    private final long ramGpa;
    private final ConsoleMetrics metrics;
    private final long features;
    private final int rxSlots;
    private final int txSlots;
    private final ScatterGather sg = new ScatterGather(1);
    private final ArrayDeque<Integer> rxUnposted = new ArrayDeque<>(); // receive slots to post once the device is back
    private final List<Integer> txUnsent = new ArrayList<>(); // transmit slots to give the device that comes back
    private final int[] txLength = new int[Console.TX_BUFFERS];
    private final long[] txSeq = new long[Console.TX_BUFFERS];
    private long nextTxSeq;
    private long configChecked;
    private IOException failure; // set once the device cannot be used again
    private final DriverSignals signals;
    private volatile boolean closed;

    /**
     * Initialises the device (§3.1.1) and posts the receive buffers.
     *
     * @throws TransportException if the device is not a console or refuses the driver
     */
    ConsoleQueues(VirtioFrontend frontend, long ramGpa, ConsoleMetrics metrics) {
        this.frontend = frontend;
        this.ramGpa = ramGpa;
        this.metrics = metrics;
        this.signals = new DriverSignals(frontend, "the console device");
        this.features = frontend.initialize(ConsoleDevice.DEVICE_ID, Console.SUPPORTED_FEATURES,
                Console.RX_BUFFERS, Console.TX_BUFFERS);
        this.rxSlots = Math.min(Console.RX_BUFFERS, frontend.queue(ConsoleDevice.RECEIVEQ).size());
        this.txSlots = Math.min(Console.TX_BUFFERS, frontend.queue(ConsoleDevice.TRANSMITQ).size());
        lock.lock();
        try {
            for (int slot = 0; slot < rxSlots; slot++) {
                post(slot);
            }
            kick(ConsoleDevice.RECEIVEQ);
        } finally {
            lock.unlock();
        }
    }

    long features() {
        return features;
    }

    /** Transmit buffers in use (fewer than TX_BUFFERS if the device's queue is smaller). */
    int txSlots() {
        return txSlots;
    }

    boolean isClosed() {
        return closed;
    }

    // ---------------------------------------------------------------- signals

    /** The signal count, to pass to {@link #await} after looking at the queues. */
    long usedEpoch() {
        return signals.usedEpoch();
    }

    /**
     * Waits for a used-buffer signal (or a configuration change, detach or reattach) after
     * {@code seen}, at most a second. Never called with {@link #lock} held.
     */
    void await(long seen) throws IOException {
        signals.await(seen);
    }

    // ---------------------------------------------------------------- state, under the lock

    /**
     * Under the lock, before a stream touches {@code queue}: whether it can. False while the
     * backend is detached; re-initialises the device once a new backend has attached.
     *
     * @throws IOException if the console is closed or failed, the transport or the queue broke, or
     *                     the device needs a reset
     */
    boolean ready(int queue) throws IOException {
        if (closed) {
            throw new IOException("console is closed");
        }
        if (failure != null) {
            throw new IOException(failure.getMessage(), failure);
        }
        DriverTransport transport = frontend.transport();
        if (transport.isBroken()) {
            metrics.recordFault();
            throw new IOException("console transport broken: " + transport);
        }
        if (transport.isDetached()) {
            signals.markDetached();
            return false;
        }
        if (signals.detachSeen() && !reinitialise()) {
            return false;
        }
        VirtqueueDriver<Integer> q = frontend.queue(queue);
        if (q.isBroken()) {
            metrics.recordFault();
            throw new IOException("console queue broken: " + q.fault().message());
        }
        long config = signals.configEpoch();
        if (config != configChecked) {
            configChecked = config;
            return checkStatus();
        }
        return true;
    }

    /** Under the lock: false if the backend detached, throws if the device needs a reset. */
    private boolean checkStatus() throws IOException {
        int status;
        try {
            status = frontend.status();
        } catch (TransportException e) {
            if (frontend.transport().isDetached()) {
                signals.markDetached();
                return false;
            }
            throw new IOException("console transport failed: " + e.getMessage(), e);
        }
        if ((status & DeviceStatus.DEVICE_NEEDS_RESET) != 0) {
            failure = new IOException("console device needs a reset");
            throw failure;
        }
        return true;
    }

    /**
     * Under the lock, after a new backend attached: resets the device (so nothing touches the old
     * rings), takes back the buffers in flight, initialises the device again with the features of the
     * first time, posts the receive buffers and gives the device the unacknowledged transmit buffers
     * again, oldest first.
     *
     * @return true if the device is ready; false if the backend detached again meanwhile
     * @throws IOException if the transport broke or the device came back different or refused the driver
     */
    private boolean reinitialise() throws IOException {
        signals.clearDetach();
        DriverTransport transport = frontend.transport();
        try {
            transport.writeStatus(0);
            if (frontend.status() != 0) {
                throw new TransportException(transport.name() + ": status not 0 after reset");
            }
            if (frontend.queueCount() > ConsoleDevice.TRANSMITQ) {
                frontend.<Integer>queue(ConsoleDevice.RECEIVEQ).detachUnused(rxUnposted::add);
                frontend.<Integer>queue(ConsoleDevice.TRANSMITQ).detachUnused(txUnsent::add);
            }
            long again = frontend.initialize(ConsoleDevice.DEVICE_ID, Console.SUPPORTED_FEATURES,
                    Console.RX_BUFFERS, Console.TX_BUFFERS);
            int rxSize = frontend.queue(ConsoleDevice.RECEIVEQ).size();
            int txSize = frontend.queue(ConsoleDevice.TRANSMITQ).size();
            if (again != features || rxSize < rxSlots || txSize < txSlots) {
                frontend.reset();
                failure = new IOException("console device " + transport.name() + " came back with features "
                        + VirtioFeatures.describe(again) + " and queues of " + rxSize + " and " + txSize
                        + "; the driver uses " + VirtioFeatures.describe(features) + " and " + rxSlots + " and " + txSlots);
                throw failure;
            }
            for (Integer slot; (slot = rxUnposted.poll()) != null; ) {
                post(slot);
            }
            kick(ConsoleDevice.RECEIVEQ);
            metrics.recordReattach(resubmitTransmits());
            return true;
        } catch (TransportException e) {
            if (!transport.isBroken() && (transport.isDetached() || signals.detachSeen())) {
                signals.markDetached();
                return false; // the new backend went away too: wait for the next one
            }
            if (transport.isBroken()) {
                throw new IOException("console transport broken: " + e.getMessage(), e);
            }
            failure = new IOException("console device " + transport.name() + " could not be initialised again: "
                    + e.getMessage(), e);
            throw failure;
        }
    }

    /** Under the lock: gives the device the transmit buffers held since the detach, in the order written. */
    private int resubmitTransmits() {
        txUnsent.sort(Comparator.comparingLong(slot -> txSeq[slot]));
        VirtqueueDriver<Integer> q = frontend.queue(ConsoleDevice.TRANSMITQ);
        int count = 0;
        while (!txUnsent.isEmpty()) {
            int slot = txUnsent.getFirst();
            sg.clear().out(ramGpa + Console.TX_BASE + (long) slot * Console.BUFFER_BYTES, txLength[slot]);
            if (!q.add(sg, slot)) {
                break; // the queue broke already (the next turn says why); the slots stay held
            }
            txUnsent.removeFirst();
            count++;
        }
        kick(ConsoleDevice.TRANSMITQ);
        return count;
    }

    // ---------------------------------------------------------------- queue steps, under the lock

    /** Under the lock, after {@link #ready}: the queue. */
    VirtqueueDriver<Integer> queue(int queue) {
        return frontend.queue(queue);
    }

    /** Under the lock: notifies the device; while the backend is away there is nobody to tell. */
    void kick(int queue) {
        if (frontend.queueCount() > queue && !signals.detachSeen()) {
            try {
                frontend.kick(queue);
            } catch (TransportException e) {
                // Detached or broken meanwhile: the next turn of the stream finds out which.
            }
        }
    }

    /** Under the lock: posts a receive buffer, or holds it for the next device if the queue is down. */
    void post(int slot) {
        VirtqueueDriver<Integer> q = frontend.queueCount() > ConsoleDevice.RECEIVEQ ? frontend.queue(ConsoleDevice.RECEIVEQ) : null;
        sg.clear().in(ramGpa + Console.RX_BASE + (long) slot * Console.BUFFER_BYTES, Console.BUFFER_BYTES);
        if (q != null && q.add(sg, slot)) {
            return;
        }
        if (q != null && !q.isBroken()) {
            throw new IllegalStateException("receiveq has no room for buffer " + slot + " of " + rxSlots);
        }
        rxUnposted.add(slot);
    }

    /**
     * Under the lock: gives the device one transmit buffer (the caller kicks).
     *
     * @return false if the backend is away or the queue just broke: the buffer was not taken
     * @throws IOException as {@link #ready}
     */
    boolean transmit(int slot, int lengthBytes) throws IOException {
        if (!ready(ConsoleDevice.TRANSMITQ)) {
            return false;
        }
        VirtqueueDriver<Integer> q = frontend.queue(ConsoleDevice.TRANSMITQ);
        sg.clear().out(ramGpa + Console.TX_BASE + (long) slot * Console.BUFFER_BYTES, lengthBytes);
        if (!q.add(sg, slot)) {
            if (q.isBroken()) {
                return false; // detached just now, or a fault: the next turn says which
            }
            throw new IllegalStateException("transmitq has no room for buffer " + slot + " of " + txSlots);
        }
        txLength[slot] = lengthBytes;
        txSeq[slot] = nextTxSeq++;
        return true;
    }

    // ---------------------------------------------------------------- configuration

    /**
     * Reads configuration space, re-initialising the device first if a new backend attached.
     *
     * @throws TransportException if the device does not answer or its backend is detached
     */
    void readConfig(int offset, byte[] dst) {
        lock.lock();
        try {
            readyForConfig();
            frontend.readConfig(offset, dst);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Writes a configuration field, re-initialising the device first if a new backend attached.
     *
     * @throws TransportException if the device refuses or does not answer, or its backend is detached
     */
    void writeConfig(int offset, int sizeBytes, long value) {
        lock.lock();
        try {
            readyForConfig();
            frontend.writeConfig(offset, sizeBytes, value);
        } finally {
            lock.unlock();
        }
    }

    private void readyForConfig() {
        if (closed) {
            throw new TransportException("console is closed");
        }
        if (failure != null) {
            throw new TransportException(failure.getMessage()); // failed for good: never initialised again
        }
        if (signals.detachSeen() && !frontend.transport().isDetached() && !frontend.transport().isBroken()) {
            try {
                reinitialise();
            } catch (IOException e) {
                throw new TransportException(e.getMessage());
            }
        }
    }

    // ---------------------------------------------------------------- close

    /** Marks the console closed and wakes every waiting stream (they then leave, releasing their locks). */
    void markClosed() {
        closed = true;
        signals.close();
    }

    /**
     * With both streams' locks held, after {@link #markClosed}: stops listening and resets the device
     * unless its transport is broken or detached (buffers in flight are dropped).
     */
    void shutdown() {
        lock.lock();
        try {
            frontend.setListener(null);
            DriverTransport transport = frontend.transport();
            if (!transport.isBroken() && !transport.isDetached()) {
                try {
                    frontend.reset();
                } catch (TransportException e) {
                    // The backend went away meanwhile: the next initialise (or the frontend's close) frees the queues.
                }
            }
        } finally {
            lock.unlock();
        }
    }
}
