package dev.airlock.vhostuser;

import dev.airlock.hypervisor.SharedRegionId;
import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.VmId;
import dev.airlock.memory.SharedMemory;
import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.NativeCallException;
import dev.airlock.memory.sys.UnixSocket;
import dev.airlock.transport.DriverTransport;
import dev.airlock.transport.TransportException;
import dev.airlock.transport.TransportKind;
import dev.airlock.virtio.DeviceStatus;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Objects;
import java.util.function.Supplier;

import static dev.airlock.vhostuser.FrontendMessages.state;
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
 * given to {@link #enableQueue} (SET_VRING_NUM, BASE, ADDR, KICK, CALL, ENABLE); 0 stops every
 * started queue with GET_VRING_BASE. A refused step (REPLY_ACK non-zero) leaves the bit clear.
 *
 * <p><b>Failure.</b> Every reply is checked ({@link FrontendChannel}); a bad reply, a reply that
 * does not come within the timeout, or a closed socket (seen by the interrupt thread as well) marks
 * the transport broken for good: the listener hears {@link Listener#onBroken()} and every later
 * operation throws {@link TransportException}.
 */
public final class VhostUserDriverTransport implements DriverTransport {
    /** The largest queue size offered (VIRTQUEUE_MAX_SIZE in QEMU and libvhost-user). */
    public static final int MAX_QUEUE_SIZE = 1024;
    /** The most queues used. */
    public static final int MAX_QUEUES = 64;
    /** The default reply timeout. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(5);

    private static final long WANTED_PROTOCOL_FEATURES = 1L << VhostUserRequest.PROTOCOL_F_MQ
            | 1L << VhostUserRequest.PROTOCOL_F_REPLY_ACK | 1L << VhostUserRequest.PROTOCOL_F_CONFIG;
    private static final long F_PROTOCOL_FEATURES_BIT = 1L << VhostUserRequest.F_PROTOCOL_FEATURES;

    private final String name;
    private final int deviceId;
    private final int configLengthBytes;
    private final SharedMemory memory;
    private final SharedRegionMapping mapping;
    private final long uvaBase;
    private final FrontendChannel channel;
    private final long backendFeatures;
    private final long protocolFeatures;
    private final int queueCount;
    private final int[] kickFds;
    private final int[] callFds;
    private final VhostUserQueueSetup[] queues;
    private final CallPoller poller;
    private volatile Listener listener;
    private volatile boolean broken;
    private volatile boolean closed;
    private volatile String brokenReason = "";
    private volatile int status; // read without the lock: status() never waits for a reply
    private long driverFeatures;
    private byte[] config;
    private int configGeneration;

    private VhostUserDriverTransport(String name, int deviceId, int configLengthBytes, SharedMemory memory, long gpaBase,
                                     UnixSocket socket, long timeoutMs) {
        this.name = name;
        this.deviceId = deviceId;
        this.configLengthBytes = configLengthBytes;
        this.memory = memory;
        this.mapping = new SharedRegionMapping(new SharedRegionId(1), new VmId(1), memory.region(gpaBase));
        this.uvaBase = memory.segment().address();
        this.channel = new FrontendChannel(name, socket, timeoutMs);
        try {
            this.backendFeatures = call(VhostUserRequest.GET_FEATURES);
            long offered = 0;
            if ((backendFeatures & F_PROTOCOL_FEATURES_BIT) != 0) {
                offered = call(VhostUserRequest.GET_PROTOCOL_FEATURES);
                channel.send(VhostUserRequest.SET_PROTOCOL_FEATURES, false, u64(offered & WANTED_PROTOCOL_FEATURES));
            }
            this.protocolFeatures = offered & WANTED_PROTOCOL_FEATURES;
            int count = 1;
            if (hasProtocol(VhostUserRequest.PROTOCOL_F_MQ)) {
                long n = call(VhostUserRequest.GET_QUEUE_NUM);
                if (n < 1 || n > 0xffff) {
                    throw new TransportException(name + ": bad reply to GET_QUEUE_NUM: " + Long.toUnsignedString(n) + " queues");
                }
                count = (int) Math.min(n, MAX_QUEUES);
            }
            this.queueCount = count;
            set(VhostUserRequest.SET_OWNER, FrontendMessages.empty());
            sendMemoryTable(gpaBase);
            sync();
        } catch (RuntimeException e) {
            channel.close();
            throw e;
        }
        this.kickFds = new int[queueCount];
        this.callFds = new int[queueCount];
        this.queues = new VhostUserQueueSetup[queueCount];
        for (int q = 0; q < queueCount; q++) {
            kickFds[q] = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
            callFds[q] = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
        }
        this.poller = new CallPoller(name, callFds, channel.fd(), this::deliverUsedBuffers,
                () -> markBroken("the backend closed the connection"));
        poller.start();
    }

    /**
     * Connects to a vhost-user backend and runs the connection handshake: GET_FEATURES,
     * GET/SET_PROTOCOL_FEATURES (MQ, REPLY_ACK and CONFIG where offered), GET_QUEUE_NUM, SET_OWNER and
     * SET_MEM_TABLE with {@code memory} as the only region.
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
        Objects.requireNonNull(memory, "memory");
        if (configLengthBytes < 0 || configLengthBytes > VhostUserConfigLayout.MAX_CONFIG_LENGTH) {
            throw new IllegalArgumentException("configLengthBytes must be 0 to 256: " + configLengthBytes);
        }
        long timeoutMs = Math.max(1, timeout.toMillis());
        UnixSocket s;
        try {
            s = UnixSocket.connect(socket);
        } catch (NativeCallException e) {
            throw new TransportException("vhost-user " + socket + ": cannot connect: " + e.getMessage());
        }
        return new VhostUserDriverTransport("vhost-user:" + socket.getFileName(), deviceId, configLengthBytes, memory, gpaBase,
                s, timeoutMs);
    }

    // ---------------------------------------------------------------- messages

    private boolean hasProtocol(int bit) {
        return (protocolFeatures & 1L << bit) != 0;
    }

    /** A request answered with a u64. */
    private long call(int request) {
        channel.send(request, false, FrontendMessages.empty());
        return channel.receiveU64(request);
    }

    /** A request without a reply; with REPLY_ACK, waits for the ack and returns whether it is 0 (success). */
    private boolean set(int request, MemorySegment body, int... fds) {
        boolean ack = hasProtocol(VhostUserRequest.PROTOCOL_F_REPLY_ACK);
        channel.send(request, ack, body, fds);
        return !ack || channel.receiveU64(request) == 0;
    }

    /**
     * Without REPLY_ACK, nothing tells whether the backend took the messages sent so far: a
     * GET_FEATURES round trip (as QEMU does after SET_FEATURES) proves it is alive and has read them.
     */
    private void sync() {
        if (!hasProtocol(VhostUserRequest.PROTOCOL_F_REPLY_ACK) && call(VhostUserRequest.GET_FEATURES) != backendFeatures) {
            throw new TransportException(name + ": the backend's features changed");
        }
    }

    private void sendMemoryTable(long gpaBase) {
        MemorySegment table = FrontendMessages.singleRegionTable(gpaBase, memory.segment().byteSize(), uvaBase);
        if (!set(VhostUserRequest.SET_MEM_TABLE, table, memory.fd())) {
            throw new TransportException(name + ": the backend refused the memory table");
        }
    }

    /** Runs a protocol step; a failure breaks the transport. */
    private <T> T guarded(Supplier<T> step) {
        if (broken || closed) {
            throw new TransportException(name + ": broken: " + brokenReason);
        }
        try {
            return step.get();
        } catch (TransportException e) {
            markBroken(e.getMessage());
            throw e;
        } catch (NativeCallException e) {
            markBroken(e.getMessage());
            throw new TransportException(name + ": " + e.getMessage());
        }
    }

    private void markBroken(String why) {
        if (closed) {
            return;
        }
        synchronized (this) {
            if (broken) {
                return;
            }
            brokenReason = why;
            broken = true;
        }
        channel.shutdown();
        Listener l = listener;
        if (l != null) {
            l.onBroken();
        }
    }

    private void deliverUsedBuffers() {
        Listener l = listener;
        if (l != null && !broken) {
            l.onUsedBuffers();
        }
    }

    // ---------------------------------------------------------------- DriverTransport

    /**
     * vhost-user carries control as request/reply messages and notifications as eventfds, the
     * shape of msgq-mmio; {@link TransportKind} has no vhost-user constant yet.
     *
     * @return {@link TransportKind#MSGQ_MMIO}
     */
    @Override
    public TransportKind kind() {
        return TransportKind.MSGQ_MMIO;
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
        return status;
    }

    @Override
    public synchronized void writeStatus(int value) {
        guarded(() -> {
            int next = value & 0xff;
            if (next == 0) {
                stopQueues();
                status = 0;
                return null;
            }
            boolean sent = false;
            if ((next & DeviceStatus.FEATURES_OK) != 0 && (status & DeviceStatus.FEATURES_OK) == 0) {
                sent = true;
                if (!set(VhostUserRequest.SET_FEATURES, u64(driverFeatures | (backendFeatures & F_PROTOCOL_FEATURES_BIT)))) {
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
                sync();
            }
            status = next;
            return null;
        });
    }

    /** DRIVER_OK: starts every queue given to {@link #enableQueue}; false if the backend refused a step. */
    private boolean startQueues() {
        boolean ok = true;
        for (int q = 0; q < queueCount && ok; q++) {
            VhostUserQueueSetup s = queues[q];
            if (s == null) {
                continue;
            }
            MemorySegment addr = FrontendMessages.vringAddr(q, uva(s.descAddr()), uva(s.usedAddr()), uva(s.availAddr()));
            ok = set(VhostUserRequest.SET_VRING_NUM, state(q, s.size()))
                    && set(VhostUserRequest.SET_VRING_BASE, state(q, 0))
                    && set(VhostUserRequest.SET_VRING_ADDR, addr)
                    && set(VhostUserRequest.SET_VRING_KICK, u64(q), kickFds[q])
                    && set(VhostUserRequest.SET_VRING_CALL, u64(q), callFds[q])
                    && ((backendFeatures & F_PROTOCOL_FEATURES_BIT) == 0 || set(VhostUserRequest.SET_VRING_ENABLE, state(q, 1)));
            queues[q] = s.withStarted(true);
        }
        return ok;
    }

    /** Reset: stops every started queue (SET_VRING_ENABLE 0, then GET_VRING_BASE) and forgets the queues. */
    private void stopQueues() {
        for (int q = 0; q < queueCount; q++) {
            VhostUserQueueSetup s = queues[q];
            queues[q] = null;
            if (s == null || !s.started()) {
                continue;
            }
            if ((backendFeatures & F_PROTOCOL_FEATURES_BIT) != 0) {
                set(VhostUserRequest.SET_VRING_ENABLE, state(q, 0));
            }
            channel.send(VhostUserRequest.GET_VRING_BASE, false, state(q, 0));
            MemorySegment reply = channel.receive(VhostUserRequest.GET_VRING_BASE, VhostUserVringLayout.STATE_LENGTH);
            int index = reply.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserVringLayout.STATE_INDEX_OFFSET);
            int num = reply.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserVringLayout.STATE_NUM_OFFSET);
            if (index != q || Integer.compareUnsigned(num, 0xffff) > 0) {
                throw new TransportException(name + ": bad reply to GET_VRING_BASE for queue " + q + ": index " + index
                        + ", num " + Integer.toUnsignedString(num));
            }
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
            long descBytes = 16L * size;
            long availBytes = 6L + 2L * size;
            long usedBytes = 6L + 8L * size;
            if (!mapping.region().contains(descAddr, descBytes) || !mapping.region().contains(availAddr, availBytes)
                    || !mapping.region().contains(usedAddr, usedBytes)) {
                return false;
            }
            queues[queue] = new VhostUserQueueSetup(size, descAddr, availAddr, usedAddr, false);
            return true;
        });
    }

    @Override
    public synchronized int configGeneration() {
        return guarded(() -> {
            byte[] fresh = fetchConfig();
            if (config != null && !Arrays.equals(config, fresh)) {
                configGeneration++;
            }
            config = fresh;
            return configGeneration;
        });
    }

    private byte[] fetchConfig() {
        if (!hasProtocol(VhostUserRequest.PROTOCOL_F_CONFIG)) {
            throw new TransportException(name + ": the backend does not offer VHOST_USER_PROTOCOL_F_CONFIG");
        }
        MemorySegment request = MemorySegment.ofArray(new byte[VhostUserConfigLayout.HEADER_LENGTH + configLengthBytes]);
        request.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.OFFSET_OFFSET, 0);
        request.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.SIZE_OFFSET, configLengthBytes);
        channel.send(VhostUserRequest.GET_CONFIG, false, request);
        MemorySegment reply = channel.receive(VhostUserRequest.GET_CONFIG, VhostUserConfigLayout.HEADER_LENGTH + configLengthBytes);
        int offset = reply.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.OFFSET_OFFSET);
        int size = reply.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.SIZE_OFFSET);
        if (offset != 0 || size != configLengthBytes) {
            throw new TransportException(name + ": bad reply to GET_CONFIG: offset " + Integer.toUnsignedString(offset)
                    + ", size " + Integer.toUnsignedString(size));
        }
        return reply.asSlice(VhostUserConfigLayout.HEADER_LENGTH).toArray(ValueLayout.JAVA_BYTE);
    }

    @Override
    public synchronized long readConfig(int offset, int sizeBytes) {
        checkConfigAccess(offset, sizeBytes);
        return guarded(() -> {
            if (config == null) {
                config = fetchConfig();
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
            if (!hasProtocol(VhostUserRequest.PROTOCOL_F_CONFIG)) {
                throw new TransportException(name + ": the backend does not offer VHOST_USER_PROTOCOL_F_CONFIG");
            }
            MemorySegment request = MemorySegment.ofArray(new byte[VhostUserConfigLayout.HEADER_LENGTH + sizeBytes]);
            request.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.OFFSET_OFFSET, offset);
            request.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.SIZE_OFFSET, sizeBytes);
            for (int i = 0; i < sizeBytes; i++) {
                request.set(ValueLayout.JAVA_BYTE, VhostUserConfigLayout.HEADER_LENGTH + i, (byte) (value >>> (8 * i)));
            }
            if (!set(VhostUserRequest.SET_CONFIG, request)) {
                throw new TransportException(name + ": the backend refused a configuration write at " + offset);
            }
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
        if (broken || closed || queue < 0 || queue >= queueCount) {
            return;
        }
        try {
            Linux.eventfdWrite(kickFds[queue], 1);
        } catch (NativeCallException e) {
            markBroken("kick of queue " + queue + " failed: " + e.getMessage());
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

    /**
     * Why the transport broke.
     *
     * @return the reason, empty while it works
     */
    public String brokenReason() {
        return brokenReason;
    }

    /** Disconnects (the backend sees end of stream and stops its rings) and closes the eventfds. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        poller.close();
        channel.shutdown();
        synchronized (this) {
            channel.close();
            for (int q = 0; q < queueCount; q++) {
                Linux.close(kickFds[q]);
                Linux.close(callFds[q]);
            }
        }
    }

    @Override
    public String toString() {
        return "VhostUserDriverTransport[" + name + ", " + queueCount + " queues, " + (broken ? "broken: " + brokenReason : "up")
                + "]";
    }
}
