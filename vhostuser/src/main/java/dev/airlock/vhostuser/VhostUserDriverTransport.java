package dev.airlock.vhostuser;

import dev.airlock.hypervisor.SharedRegionId;
import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.VmId;
import dev.airlock.memory.SharedMemory;
import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.NativeCallException;
import dev.airlock.transport.DriverTransport;
import dev.airlock.transport.TransportException;
import dev.airlock.transport.TransportKind;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.VirtqAvailLayout;
import dev.airlock.virtio.VirtqDescLayout;
import dev.airlock.virtio.VirtqUsedLayout;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.function.Supplier;

import static dev.airlock.vhostuser.FrontendMessages.u64;

/**
 * The frontend side of vhost-user (QEMU docs/interop/vhost-user.rst) as a {@link DriverTransport}:
 * Airlock plays the VMM and drives a vhost-user backend (qemu-storage-daemon, Airlock's own
 * {@link VhostUserBackend}, ...) with the unchanged {@code VirtioFrontend} and device drivers.
 *
 * <p><b>Memory.</b> The backend sees exactly one region: the caller's {@link SharedMemory}, sent
 * with SET_MEM_TABLE at its guest-physical base, with this process's mapping address as the
 * userspace address (so ring addresses in SET_VRING_ADDR are that address plus the offset) and
 * mmap offset 0. The vrings and the bounce pool live in it; private RAM is never sent.
 *
 * <p><b>Status.</b> vhost-user has no status register, so the status lives here and its writes map
 * onto the protocol: the connection handshake (features, protocol features, owner, memory table)
 * happens when the transport is opened; FEATURES_OK sends SET_FEATURES; DRIVER_OK starts each queue
 * given to {@link #enableQueue} (SET_VRING_NUM, BASE, ADDR, KICK, CALL, ERR, ENABLE); 0 stops every
 * started queue with GET_VRING_BASE. A refused step (REPLY_ACK non-zero) leaves the bit clear. A
 * signal on a queue's err eventfd sets DEVICE_NEEDS_RESET and reports a configuration change.
 *
 * <p><b>Failure.</b> Every reply is checked ({@link FrontendChannel}); a bad reply or one that does
 * not come within the timeout marks the transport broken for good: the listener hears
 * {@link Listener#onBroken()} and every later operation throws {@link TransportException}.
 *
 * <p><b>Reconnect.</b> Losing the connection (end of stream, a reset, a hang-up seen by the
 * interrupt thread) is different: the backend is gone rather than misbehaving. Without a reconnect
 * window it breaks the transport as above. With one ({@link #connect(Path, int, int, SharedMemory,
 * long, Duration, Duration)}), the transport is {@link #isDetached() detached}: operations fail fast,
 * the listener hears {@link Listener#onBroken()}, and a thread connects to the same socket path
 * again (the backend may be restarted by hand) and repeats the handshake. When it succeeds with the
 * same features and queue count, the transport is back in reset state and the listener hears
 * {@link Listener#onReattached()}: the driver initialises the device again and resubmits what it
 * still holds (the blk driver keeps every request until it completes). Nothing of the old
 * connection's rings is reused, so no inflight region (GET_INFLIGHT_FD) is needed. If the backend
 * does not come back within the window, or comes back different, the transport breaks.
 */
public final class VhostUserDriverTransport implements DriverTransport {
    /** The largest queue size offered (VIRTQUEUE_MAX_SIZE in QEMU and libvhost-user). */
    public static final int MAX_QUEUE_SIZE = 1024;
    /** The most queues used. */
    public static final int MAX_QUEUES = 64;
    /** The default reply timeout. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(5);

    private static final long F_PROTOCOL_FEATURES_BIT = FrontendSession.F_PROTOCOL_FEATURES_BIT;
    private static final long FIRST_RETRY_MS = 10;
    private static final long MAX_RETRY_MS = 200;

    private final String name;
    private final Path socketPath;
    private final int deviceId;
    private final int configLengthBytes;
    private final SharedMemory memory;
    private final SharedRegionMapping mapping;
    private final long uvaBase;
    private final long timeoutMs;
    private final long reconnectMs;
    private final long backendFeatures; // of the first connection; a reconnect must match
    private final int queueCount;
    private final int[] kickFds;
    private final int[] callFds;
    private final int[] errFds;
    private final VhostUserQueueSetup[] queues;
    /** Kicks hold the read lock while they write a kick fd; close() takes the write lock once, after setting closed. */
    private final ReentrantReadWriteLock fdLock = new ReentrantReadWriteLock();
    /** Guards the broken, detached and closed transitions; never held while waiting for a reply. */
    private final Object stateLock = new Object();
    private volatile FrontendSession session; // replaced by a reconnect while holding this object's monitor
    private volatile CallPoller poller;
    private volatile Thread reconnector;
    private volatile Listener listener;
    private volatile boolean broken;
    private volatile boolean detached;
    private volatile boolean closed;
    private volatile String brokenReason = "";
    private volatile String detachedReason = "";
    private volatile int status; // read without the lock: status() never waits for a reply
    private volatile boolean needsReset; // a queue's err eventfd fired; cleared by a reset
    private long driverFeatures;
    private byte[] config;
    private int configGeneration;

    private VhostUserDriverTransport(String name, Path socketPath, int deviceId, int configLengthBytes, SharedMemory memory,
                                     long gpaBase, FrontendSession first, long timeoutMs, long reconnectMs) {
        this.name = name;
        this.socketPath = socketPath;
        this.deviceId = deviceId;
        this.configLengthBytes = configLengthBytes;
        this.memory = memory;
        this.mapping = new SharedRegionMapping(new SharedRegionId(1), new VmId(1), memory.region(gpaBase));
        this.uvaBase = memory.segment().address();
        this.timeoutMs = timeoutMs;
        this.reconnectMs = reconnectMs;
        this.session = first;
        this.backendFeatures = first.backendFeatures;
        this.queueCount = first.queueCount;
        this.kickFds = new int[queueCount];
        this.callFds = new int[queueCount];
        this.errFds = new int[queueCount];
        this.queues = new VhostUserQueueSetup[queueCount];
        for (int q = 0; q < queueCount; q++) {
            kickFds[q] = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
            callFds[q] = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
            errFds[q] = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
        }
        this.poller = startPoller(first);
    }

    /**
     * Connects to a vhost-user backend and runs the connection handshake: GET_FEATURES,
     * GET/SET_PROTOCOL_FEATURES (MQ, REPLY_ACK and CONFIG where offered), GET_QUEUE_NUM, SET_OWNER and
     * SET_MEM_TABLE with {@code memory} as the only region. Losing the connection breaks the transport.
     *
     * @param socket            the backend's socket
     * @param deviceId          the virtio device id the backend implements (vhost-user does not say)
     * @param configLengthBytes the length of the device's configuration space, read whole with
     *                          GET_CONFIG (backends such as libvhost-user ignore the offset); at most 256
     * @param memory            the shared region for vrings and bounce buffers; not owned (the caller closes it)
     * @param gpaBase           the region's guest-physical base
     * @param timeout           how long to wait for each reply
     * @return the transport, in reset state
     * @throws TransportException if the backend cannot be reached, answers badly or not in time
     */
    public static VhostUserDriverTransport connect(Path socket, int deviceId, int configLengthBytes, SharedMemory memory,
                                                   long gpaBase, Duration timeout) {
        return connect(socket, deviceId, configLengthBytes, memory, gpaBase, timeout, Duration.ZERO);
    }

    /**
     * Connects as {@link #connect(Path, int, int, SharedMemory, long, Duration)} does, and keeps
     * reconnecting to the same path for up to {@code reconnectFor} each time the connection is lost.
     *
     * @param socket            the backend's socket
     * @param deviceId          the virtio device id the backend implements
     * @param configLengthBytes the length of the device's configuration space, at most 256
     * @param memory            the shared region for vrings and bounce buffers; not owned
     * @param gpaBase           the region's guest-physical base
     * @param timeout           how long to wait for each reply
     * @param reconnectFor      how long to try to reconnect after losing the backend; zero breaks at once
     * @return the transport, in reset state
     * @throws TransportException if the backend cannot be reached, answers badly or not in time
     */
    public static VhostUserDriverTransport connect(Path socket, int deviceId, int configLengthBytes, SharedMemory memory,
                                                   long gpaBase, Duration timeout, Duration reconnectFor) {
        Objects.requireNonNull(memory, "memory");
        if (configLengthBytes < 0 || configLengthBytes > VhostUserConfigLayout.MAX_CONFIG_LENGTH) {
            throw new IllegalArgumentException("configLengthBytes must be 0 to 256: " + configLengthBytes);
        }
        if (reconnectFor.isNegative()) {
            throw new IllegalArgumentException("negative reconnect window: " + reconnectFor);
        }
        long timeoutMs = Math.max(1, timeout.toMillis());
        String name = "vhost-user:" + socket.getFileName();
        FrontendSession first = FrontendSession.open(name, socket, memory, gpaBase, timeoutMs, MAX_QUEUES);
        return new VhostUserDriverTransport(name, socket, deviceId, configLengthBytes, memory, gpaBase, first, timeoutMs,
                reconnectFor.toMillis());
    }

    private CallPoller startPoller(FrontendSession s) {
        CallPoller p = new CallPoller(name, callFds, errFds, s.channel.fd(), this::deliverUsedBuffers, this::queueError,
                () -> connectionLost(s, "the backend closed the connection"));
        p.start();
        return p;
    }

    // ---------------------------------------------------------------- failure and reconnect

    /** Runs a protocol step under this object's monitor; a failure breaks or detaches the transport. */
    private <T> T guarded(Supplier<T> step) {
        if (broken || closed) {
            throw new TransportException(name + ": broken: " + brokenReason);
        }
        if (detached) {
            throw new TransportException(name + ": detached (" + detachedReason + "); reconnecting to " + socketPath);
        }
        FrontendSession s = session;
        try {
            return step.get();
        } catch (TransportException e) {
            failed(s, e.getMessage());
            throw e;
        } catch (NativeCallException e) {
            failed(s, e.getMessage());
            throw new TransportException(name + ": " + e.getMessage());
        }
    }

    private void failed(FrontendSession s, String why) {
        if (s.channel.isLost()) {
            connectionLost(s, why);
        } else {
            markBroken(why);
        }
    }

    /** The connection of {@code s} is gone: detach and reconnect, or break without a reconnect window. */
    private void connectionLost(FrontendSession s, String why) {
        if (reconnectMs == 0) {
            markBroken(why);
            return;
        }
        synchronized (stateLock) {
            if (closed || broken || detached || s != session) {
                return; // already handled, or an old connection's late hang-up
            }
            detachedReason = why;
            detached = true;
            reconnector = Thread.ofPlatform().daemon().name("airlock-vhost-reconnect-" + name).start(this::reconnect);
        }
        s.channel.shutdown();
        Listener l = listener;
        if (l != null) {
            l.onBroken();
        }
    }

    private void markBroken(String why) {
        synchronized (stateLock) {
            if (closed || broken) {
                return;
            }
            brokenReason = why;
            broken = true;
            detached = false;
        }
        session.channel.shutdown();
        Listener l = listener;
        if (l != null) {
            l.onBroken();
        }
    }

    /** The reconnect thread: connects again until the handshake succeeds, the window ends or the transport closes. */
    private void reconnect() {
        long deadlineNs = System.nanoTime() + reconnectMs * 1_000_000L;
        long waitMs = FIRST_RETRY_MS;
        String last = detachedReason;
        while (!closed) {
            if (System.nanoTime() - deadlineNs > 0) {
                markBroken("the backend did not come back within " + reconnectMs + " ms: " + last);
                return;
            }
            try {
                Thread.sleep(waitMs);
            } catch (InterruptedException e) {
                return; // close()
            }
            waitMs = Math.min(waitMs * 2, MAX_RETRY_MS);
            FrontendSession fresh;
            try {
                fresh = FrontendSession.open(name, socketPath, memory, mapping.gpaBase(), timeoutMs, MAX_QUEUES);
            } catch (TransportException e) {
                last = e.getMessage(); // not listening yet, or still starting: try again
                continue;
            }
            if (fresh.backendFeatures != backendFeatures || fresh.queueCount != queueCount) {
                fresh.close();
                markBroken("the backend came back with features 0x" + Long.toHexString(fresh.backendFeatures) + " and "
                        + fresh.queueCount + " queues; it had 0x" + Long.toHexString(backendFeatures) + " and " + queueCount);
                return;
            }
            if (adopt(fresh)) {
                Listener l = listener;
                if (l != null && !closed && !broken && !detached && session == fresh) {
                    l.onReattached(); // not if it closed or the fresh connection was lost again meanwhile
                }
            } else {
                fresh.close();
            }
            return;
        }
    }

    /** Makes {@code fresh} the connection, the device in reset state; false if the transport closed or broke meanwhile. */
    private boolean adopt(FrontendSession fresh) {
        synchronized (this) { // no protocol step runs while the connection is swapped
            synchronized (stateLock) {
                if (closed || broken) {
                    return false; // the caller closes fresh; close() or markBroken() deals with the rest
                }
            }
            poller.close(); // joins the old interrupt thread, which no longer watches anything useful
            Arrays.fill(queues, null);
            needsReset = false;
            driverFeatures = 0;
            config = null;
            status = 0;
            FrontendSession previous = session;
            synchronized (stateLock) {
                // Attached again before the new interrupt thread starts: a hang-up it sees at once detaches again.
                session = fresh;
                detached = false;
                detachedReason = "";
            }
            previous.close();
            poller = startPoller(fresh);
            return true;
        }
    }

    /**
     * A queue's err eventfd fired: the backend found the queue unusable (a bad descriptor, say). The
     * device needs a reset, which it announces as a configuration change (VIRTIO 1.2 §2.1.2).
     */
    private void queueError(int queue) {
        if (broken || detached || closed || needsReset || (status & DeviceStatus.DRIVER_OK) == 0) {
            return; // nothing runs (a late signal from before a reset), or already reported
        }
        VhostUserLog.warn(name + ": the backend reported an error on queue " + queue + "; the device needs a reset");
        needsReset = true;
        Listener l = listener;
        if (l != null) {
            l.onConfigChange();
        }
    }

    private void deliverUsedBuffers() {
        Listener l = listener;
        if (l != null && !broken && !detached) {
            l.onUsedBuffers();
        }
    }

    // ---------------------------------------------------------------- DriverTransport

    @Override
    public TransportKind kind() {
        return TransportKind.VHOST_USER;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int probe() {
        return guarded(() -> deviceId);
    }

    @Override
    public long deviceFeatures() {
        return backendFeatures & ~F_PROTOCOL_FEATURES_BIT;
    }

    @Override
    public synchronized void writeDriverFeatures(long features) {
        guarded(() -> {
            if ((features & ~deviceFeatures()) != 0) {
                throw new TransportException(name + ": driver features 0x" + Long.toHexString(features) + " not offered");
            }
            driverFeatures = features;
            return null;
        });
    }

    @Override
    public int status() {
        return needsReset ? status | DeviceStatus.DEVICE_NEEDS_RESET : status;
    }

    @Override
    public synchronized void writeStatus(int value) {
        guarded(() -> {
            int next = value & 0xff;
            if (next == 0) {
                stopQueues();
                status = 0;
                needsReset = false;
                return null;
            }
            boolean sent = false;
            if ((next & DeviceStatus.FEATURES_OK) != 0 && (status & DeviceStatus.FEATURES_OK) == 0) {
                sent = true;
                if (!session.set(VhostUserRequest.SET_FEATURES, u64(driverFeatures | (backendFeatures & F_PROTOCOL_FEATURES_BIT)))) {
                    next &= ~(DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
                }
            }
            if ((next & DeviceStatus.DRIVER_OK) != 0 && (status & DeviceStatus.DRIVER_OK) == 0) {
                sent = true;
                if (!startQueues()) {
                    next = (next & ~DeviceStatus.DRIVER_OK) | DeviceStatus.DEVICE_NEEDS_RESET;
                }
            }
            if (sent) {
                session.sync();
            }
            status = next;
            return null;
        });
    }

    /** DRIVER_OK: starts every queue given to {@link #enableQueue}; false if the backend refused a step. */
    private boolean startQueues() {
        FrontendSession s = session;
        boolean ok = true;
        for (int q = 0; q < queueCount && ok; q++) {
            VhostUserQueueSetup setup = queues[q];
            if (setup == null) {
                continue;
            }
            ok = s.startQueue(q, setup.size(), uva(setup.descAddr()), uva(setup.usedAddr()), uva(setup.availAddr()),
                    kickFds[q], callFds[q], errFds[q]);
            queues[q] = setup.withStarted(true);
        }
        return ok;
    }

    /** Reset: stops every started queue (SET_VRING_ENABLE 0, then GET_VRING_BASE) and forgets the queues. */
    private void stopQueues() {
        FrontendSession s = session;
        for (int q = 0; q < queueCount; q++) {
            VhostUserQueueSetup setup = queues[q];
            queues[q] = null;
            if (setup == null || !setup.started()) {
                continue;
            }
            s.stopQueue(q);
        }
        driverFeatures = 0;
    }

    /** The address in this process of a DMA address in the shared region (checked by {@link #enableQueue}). */
    private long uva(long gpa) {
        return uvaBase + (gpa - mapping.gpaBase());
    }

    @Override
    public int queueNumMax(int queue) {
        return queue >= 0 && queue < queueCount ? MAX_QUEUE_SIZE : 0;
    }

    @Override
    public synchronized boolean enableQueue(int queue, int size, long descAddr, long availAddr, long usedAddr) {
        return guarded(() -> {
            if (queue < 0 || queue >= queueCount || size < 1 || size > MAX_QUEUE_SIZE || Integer.bitCount(size) != 1
                    || (status & DeviceStatus.DRIVER_OK) != 0) {
                return false;
            }
            if (!mapping.region().contains(descAddr, VirtqDescLayout.tableLengthBytes(size))
                    || !mapping.region().contains(availAddr, VirtqAvailLayout.lengthBytes(size))
                    || !mapping.region().contains(usedAddr, VirtqUsedLayout.lengthBytes(size))
                    || descAddr % VirtqDescLayout.TABLE_ALIGNMENT != 0 || availAddr % VirtqAvailLayout.ALIGNMENT != 0
                    || usedAddr % VirtqUsedLayout.ALIGNMENT != 0) {
                return false; // a backend would refuse these rings (VIRTIO 1.2 §2.7), and on every reconnect again
            }
            queues[queue] = new VhostUserQueueSetup(size, descAddr, availAddr, usedAddr, false);
            return true;
        });
    }

    @Override
    public synchronized int configGeneration() {
        return guarded(() -> {
            byte[] fresh = session.readConfig(configLengthBytes);
            if (config != null && !Arrays.equals(config, fresh)) {
                configGeneration++;
            }
            config = fresh;
            return configGeneration;
        });
    }

    @Override
    public synchronized long readConfig(int offset, int sizeBytes) {
        checkConfigAccess(offset, sizeBytes);
        return guarded(() -> {
            if (config == null) {
                config = session.readConfig(configLengthBytes);
            }
            long value = 0;
            for (int i = sizeBytes - 1; i >= 0; i--) {
                value = value << 8 | (config[offset + i] & 0xff); // virtio config fields are little-endian
            }
            return value;
        });
    }

    @Override
    public synchronized void writeConfig(int offset, int sizeBytes, long value) {
        checkConfigAccess(offset, sizeBytes);
        guarded(() -> {
            session.writeConfig(offset, sizeBytes, value);
            config = null;
            return null;
        });
    }

    private void checkConfigAccess(int offset, int sizeBytes) {
        if ((sizeBytes != 1 && sizeBytes != 2 && sizeBytes != 4) || offset < 0 || offset % sizeBytes != 0
                || offset + sizeBytes > configLengthBytes) {
            throw new TransportException(name + ": configuration access of " + sizeBytes + " bytes at " + offset
                    + " outside " + configLengthBytes + " bytes");
        }
    }

    @Override
    public void notifyQueue(int queue) {
        if (broken || detached || queue < 0 || queue >= queueCount) {
            return;
        }
        fdLock.readLock().lock(); // close() takes the write lock before closing the kick fds
        try {
            if (!closed) {
                Linux.eventfdWrite(kickFds[queue], 1);
            }
        } catch (NativeCallException e) {
            markBroken("kick of queue " + queue + " failed: " + e.getMessage());
        } finally {
            fdLock.readLock().unlock();
        }
    }

    @Override
    public void setListener(Listener listener) {
        this.listener = listener;
    }

    @Override
    public SharedRegionMapping region() {
        return mapping;
    }

    @Override
    public long dmaOffset() {
        return 0;
    }

    @Override
    public boolean isBroken() {
        return broken || closed;
    }

    @Override
    public boolean isDetached() {
        return detached && !broken && !closed;
    }

    /**
     * Why the transport broke.
     *
     * @return the reason, empty while it works
     */
    public String brokenReason() {
        return brokenReason;
    }

    /** Disconnects (the backend sees end of stream and stops its rings), stops reconnecting and closes the eventfds. */
    @Override
    public void close() {
        synchronized (stateLock) {
            if (closed) {
                return;
            }
            closed = true;
        }
        Thread r = reconnector;
        if (r != null && r != Thread.currentThread()) {
            r.interrupt();
            try {
                r.join(); // at most one handshake's timeouts: it checks closed before adopting
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        poller.close();
        session.channel.shutdown();
        fdLock.writeLock().lock(); // no kick is between its closed check and its write
        fdLock.writeLock().unlock();
        synchronized (this) {
            session.close();
            for (int q = 0; q < queueCount; q++) {
                Linux.close(kickFds[q]);
                Linux.close(callFds[q]);
                Linux.close(errFds[q]);
            }
        }
    }

    @Override
    public String toString() {
        String state = broken ? "broken: " + brokenReason : detached ? "detached: " + detachedReason : closed ? "closed" : "up";
        return "VhostUserDriverTransport[" + name + ", " + queueCount + " queues, " + state + "]";
    }
}
