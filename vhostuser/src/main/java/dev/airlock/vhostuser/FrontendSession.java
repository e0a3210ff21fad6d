package dev.airlock.vhostuser;

import dev.airlock.memory.SharedMemory;
import dev.airlock.memory.sys.NativeCallException;
import dev.airlock.memory.sys.UnixSocket;
import dev.airlock.transport.TransportException;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

import static dev.airlock.vhostuser.FrontendMessages.state;
import static dev.airlock.vhostuser.FrontendMessages.u64;

/**
 * One connection of {@link VhostUserDriverTransport} to its backend, from the handshake to the
 * hang-up: the channel and what the backend said about itself. A reconnect makes a new session;
 * nothing in it outlives the connection.
 *
 * <p>The handshake: GET_FEATURES, GET/SET_PROTOCOL_FEATURES (MQ, REPLY_ACK and CONFIG where
 * offered), GET_QUEUE_NUM, SET_OWNER and SET_MEM_TABLE with the one shared region.
 */
final class FrontendSession implements AutoCloseable {
    static final long WANTED_PROTOCOL_FEATURES = 1L << VhostUserRequest.PROTOCOL_F_MQ
            | 1L << VhostUserRequest.PROTOCOL_F_REPLY_ACK | 1L << VhostUserRequest.PROTOCOL_F_CONFIG;
    static final long F_PROTOCOL_FEATURES_BIT = 1L << VhostUserRequest.F_PROTOCOL_FEATURES;

    final FrontendChannel channel;
    final long backendFeatures;
    final long protocolFeatures;
    final int queueCount;

    private final String name;

    private FrontendSession(String name, FrontendChannel channel, SharedMemory memory, long gpaBase, int maxQueues) {
        this.name = name;
        this.channel = channel;
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
            count = (int) Math.min(n, maxQueues);
        }
        this.queueCount = count;
        set(VhostUserRequest.SET_OWNER, FrontendMessages.empty());
        MemorySegment table = FrontendMessages.singleRegionTable(gpaBase, memory.segment().byteSize(), memory.segment().address());
        if (!set(VhostUserRequest.SET_MEM_TABLE, table, memory.fd())) {
            throw new TransportException(name + ": the backend refused the memory table");
        }
        sync();
    }

    /**
     * Connects and runs the handshake.
     *
     * @throws TransportException if the backend cannot be reached, answers badly or not in time
     */
    static FrontendSession open(String name, Path socket, SharedMemory memory, long gpaBase, long timeoutMs, int maxQueues) {
        UnixSocket s;
        try {
            s = UnixSocket.connect(socket);
        } catch (NativeCallException e) {
            throw new TransportException("vhost-user " + socket + ": cannot connect: " + e.getMessage());
        }
        FrontendChannel channel = new FrontendChannel(name, s, timeoutMs);
        try {
            return new FrontendSession(name, channel, memory, gpaBase, maxQueues);
        } catch (RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    boolean hasProtocol(int bit) {
        return (protocolFeatures & 1L << bit) != 0;
    }

    boolean hasProtocolFeatures() {
        return (backendFeatures & F_PROTOCOL_FEATURES_BIT) != 0;
    }

    /** A request answered with a u64. */
    long call(int request) {
        channel.send(request, false, FrontendMessages.empty());
        return channel.receiveU64(request);
    }

    /** A request without a reply; with REPLY_ACK, waits for the ack and returns whether it is 0 (success). */
    boolean set(int request, MemorySegment body, int... fds) {
        boolean ack = hasProtocol(VhostUserRequest.PROTOCOL_F_REPLY_ACK);
        channel.send(request, ack, body, fds);
        return !ack || channel.receiveU64(request) == 0;
    }

    /**
     * Without REPLY_ACK, nothing tells whether the backend took the messages sent so far: a
     * GET_FEATURES round trip (as QEMU does after SET_FEATURES) proves it is alive and has read them.
     */
    void sync() {
        if (!hasProtocol(VhostUserRequest.PROTOCOL_F_REPLY_ACK) && call(VhostUserRequest.GET_FEATURES) != backendFeatures) {
            throw new TransportException(name + ": the backend's features changed");
        }
    }

    /**
     * Starts a queue: SET_VRING_NUM, BASE (0), ADDR (userspace addresses in the shared region),
     * KICK, CALL, ERR and, with protocol features, ENABLE.
     *
     * @return false if the backend refused a step
     */
    boolean startQueue(int q, int size, long descUva, long usedUva, long availUva, int kickFd, int callFd, int errFd) {
        return set(VhostUserRequest.SET_VRING_NUM, state(q, size))
                && set(VhostUserRequest.SET_VRING_BASE, state(q, 0))
                && set(VhostUserRequest.SET_VRING_ADDR, FrontendMessages.vringAddr(q, descUva, usedUva, availUva))
                && set(VhostUserRequest.SET_VRING_KICK, u64(q), kickFd)
                && set(VhostUserRequest.SET_VRING_CALL, u64(q), callFd)
                && set(VhostUserRequest.SET_VRING_ERR, u64(q), errFd)
                && (!hasProtocolFeatures() || set(VhostUserRequest.SET_VRING_ENABLE, state(q, 1)));
    }

    /** Stops a started queue: SET_VRING_ENABLE 0 (with protocol features), then GET_VRING_BASE, whose reply is checked. */
    void stopQueue(int q) {
        if (hasProtocolFeatures()) {
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

    /**
     * Reads the whole configuration space with GET_CONFIG (offset 0: backends such as libvhost-user
     * ignore the offset) and checks the reply's offset and size.
     */
    byte[] readConfig(int lengthBytes) {
        requireConfig();
        MemorySegment request = MemorySegment.ofArray(new byte[VhostUserConfigLayout.HEADER_LENGTH + lengthBytes]);
        request.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.OFFSET_OFFSET, 0);
        request.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.SIZE_OFFSET, lengthBytes);
        channel.send(VhostUserRequest.GET_CONFIG, false, request);
        MemorySegment reply = channel.receive(VhostUserRequest.GET_CONFIG, VhostUserConfigLayout.HEADER_LENGTH + lengthBytes);
        int offset = reply.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.OFFSET_OFFSET);
        int size = reply.get(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.SIZE_OFFSET);
        if (offset != 0 || size != lengthBytes) {
            throw new TransportException(name + ": bad reply to GET_CONFIG: offset " + Integer.toUnsignedString(offset)
                    + ", size " + Integer.toUnsignedString(size));
        }
        return reply.asSlice(VhostUserConfigLayout.HEADER_LENGTH).toArray(ValueLayout.JAVA_BYTE);
    }

    /** Writes 1, 2 or 4 bytes of configuration space (little-endian) with SET_CONFIG. */
    void writeConfig(int offset, int sizeBytes, long value) {
        requireConfig();
        MemorySegment request = MemorySegment.ofArray(new byte[VhostUserConfigLayout.HEADER_LENGTH + sizeBytes]);
        request.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.OFFSET_OFFSET, offset);
        request.set(ValueLayout.JAVA_INT_UNALIGNED, VhostUserConfigLayout.SIZE_OFFSET, sizeBytes);
        for (int i = 0; i < sizeBytes; i++) {
            request.set(ValueLayout.JAVA_BYTE, VhostUserConfigLayout.HEADER_LENGTH + i, (byte) (value >>> (8 * i)));
        }
        if (!set(VhostUserRequest.SET_CONFIG, request)) {
            throw new TransportException(name + ": the backend refused a configuration write at " + offset);
        }
    }

    private void requireConfig() {
        if (!hasProtocol(VhostUserRequest.PROTOCOL_F_CONFIG)) {
            throw new TransportException(name + ": the backend does not offer VHOST_USER_PROTOCOL_F_CONFIG");
        }
    }

    /** Closes the socket; the backend sees end of stream. */
    @Override
    public void close() {
        channel.shutdown();
        channel.close();
    }
}
