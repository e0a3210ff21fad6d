package dev.airlock.vhostuser;

import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.NativeCallException;
import dev.airlock.memory.sys.UnixSocket;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The back-end's end of one vhost-user connection: reads requests (header, then exactly
 * {@code size} payload bytes, collecting the descriptors that come with either) and writes replies.
 * Used by the connection thread only.
 */
final class VhostUserChannel implements AutoCloseable {
    private final UnixSocket socket;
    private final Arena arena = Arena.ofConfined();
    private final MemorySegment header = arena.allocate(VhostUserHeaderLayout.HEADER_LENGTH, 8);
    private final MemorySegment payload = arena.allocate(VhostUserHeaderLayout.MAX_PAYLOAD_LENGTH, 8);

    VhostUserChannel(UnixSocket socket) {
        this.socket = socket;
    }

    /**
     * Reads the next request.
     *
     * @return the request, or null when the front-end closed the connection between messages
     * @throws VhostUserProtocolException for a bad header (flags, size)
     */
    VhostUserMessage read() {
        int[] headerFds;
        try {
            headerFds = socket.receiveFully(header);
        } catch (NativeCallException e) {
            throw new VhostUserProtocolException("header", VhostUserHeaderLayout.HEADER_LENGTH,
                    "connection failed or closed in the middle of a header: " + e.getMessage());
        }
        if (headerFds == null) {
            return null;
        }
        int request = header.get(ValueLayout.JAVA_INT, VhostUserHeaderLayout.REQUEST_OFFSET);
        int flags = header.get(ValueLayout.JAVA_INT, VhostUserHeaderLayout.FLAGS_OFFSET);
        int size = header.get(ValueLayout.JAVA_INT, VhostUserHeaderLayout.SIZE_OFFSET);
        String name = VhostUserRequest.name(request);
        try {
            if ((flags & VhostUserHeaderLayout.VERSION_MASK) != VhostUserHeaderLayout.VERSION) {
                throw new VhostUserProtocolException(name + ".flags", Integer.toUnsignedLong(flags), "version is not 1");
            }
            if ((flags & ~VhostUserHeaderLayout.REQUEST_FLAGS_MASK) != 0) {
                throw new VhostUserProtocolException(name + ".flags", Integer.toUnsignedLong(flags),
                        "reserved bits or REPLY set in a request");
            }
            if (Integer.compareUnsigned(size, VhostUserHeaderLayout.MAX_PAYLOAD_LENGTH) > 0) {
                throw new VhostUserProtocolException(name + ".size", Integer.toUnsignedLong(size),
                        "larger than " + VhostUserHeaderLayout.MAX_PAYLOAD_LENGTH);
            }
            int[] fds = headerFds;
            if (size > 0) {
                int[] payloadFds;
                try {
                    payloadFds = socket.receiveFully(payload.asSlice(0, size));
                } catch (NativeCallException e) {
                    throw new VhostUserProtocolException(name + ".size", size,
                            "connection failed or closed in the middle of the payload: " + e.getMessage());
                }
                if (payloadFds == null) {
                    throw new VhostUserProtocolException(name + ".size", size, "connection closed before the payload");
                }
                if (payloadFds.length > 0) {
                    fds = Arrays.copyOf(fds, fds.length + payloadFds.length);
                    System.arraycopy(payloadFds, 0, fds, headerFds.length, payloadFds.length);
                }
            }
            MemorySegment copy = Arena.ofAuto().allocate(Math.max(size, 1), 8).asSlice(0, size);
            MemorySegment.copy(payload, 0, copy, 0, size);
            return new VhostUserMessage(request, flags, copy, fds);
        } catch (RuntimeException e) {
            for (int fd : headerFds) {
                Linux.close(fd);
            }
            throw e;
        }
    }

    /** Sends a reply carrying {@code body} (may be empty) and optional descriptors. */
    void reply(int request, MemorySegment body, int... fds) {
        long length = VhostUserHeaderLayout.HEADER_LENGTH + body.byteSize();
        try (Arena out = Arena.ofConfined()) {
            MemorySegment message = out.allocate(length, 8);
            message.set(ValueLayout.JAVA_INT, VhostUserHeaderLayout.REQUEST_OFFSET, request);
            message.set(ValueLayout.JAVA_INT, VhostUserHeaderLayout.FLAGS_OFFSET,
                    VhostUserHeaderLayout.VERSION | VhostUserHeaderLayout.FLAG_REPLY);
            message.set(ValueLayout.JAVA_INT, VhostUserHeaderLayout.SIZE_OFFSET, (int) body.byteSize());
            MemorySegment.copy(body, 0, message, VhostUserHeaderLayout.HEADER_LENGTH, body.byteSize());
            socket.send(message, fds);
        }
    }

    /** Sends a reply whose payload is one u64. */
    void replyU64(int request, long value) {
        MemorySegment body = MemorySegment.ofArray(new long[] {value});
        reply(request, body);
    }

    /** Wakes a thread blocked in {@link #read}. */
    void shutdown() {
        socket.shutdown();
    }

    @Override
    public void close() {
        socket.close();
        arena.close();
    }
}
