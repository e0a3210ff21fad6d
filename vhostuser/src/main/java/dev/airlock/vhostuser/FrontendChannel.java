package dev.airlock.vhostuser;

import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.NativeCallException;
import dev.airlock.memory.sys.UnixSocket;
import dev.airlock.transport.TransportException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The frontend's end of a vhost-user socket: sends requests and reads replies with a deadline.
 * Every reply is untrusted: its header is read once and checked (version 1, REPLY set, no unknown
 * flags, the request code of the request, the expected size, no descriptors) before the payload is
 * used. A closed socket, a timeout or a bad reply throws {@link TransportException}; the caller
 * marks the transport broken, or detached when the connection itself was lost ({@link #isLost()}).
 * Not thread-safe: the transport serialises its requests.
 */
final class FrontendChannel implements AutoCloseable {
    /** The flags a reply may carry: the version, REPLY, and NEED_REPLY echoed back by some backends. */
    private static final int REPLY_FLAGS_MASK = VhostUserHeaderLayout.VERSION_MASK | VhostUserHeaderLayout.FLAG_REPLY
            | VhostUserHeaderLayout.FLAG_NEED_REPLY;

    private final String name;
    private final UnixSocket socket;
    private final long timeoutMs;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment header = arena.allocate(VhostUserHeaderLayout.HEADER_LENGTH, 8);
    private final MemorySegment payload = arena.allocate(VhostUserHeaderLayout.MAX_PAYLOAD_LENGTH, 8);
    private final MemorySegment pollfd = arena.allocate(Linux.POLLFD_LENGTH, 8);
    private volatile boolean lost;

    FrontendChannel(String name, UnixSocket socket, long timeoutMs) {
        this.name = name;
        this.socket = socket;
        this.timeoutMs = timeoutMs;
    }

    int fd() {
        return socket.fd();
    }

    /**
     * Whether a failure was the connection going away (end of stream, a reset, a failed send)
     * rather than a bad or late reply: the backend is gone, not misbehaving.
     */
    boolean isLost() {
        return lost;
    }

    /** Sends one request; {@code needReply} sets NEED_REPLY (REPLY_ACK). */
    void send(int request, boolean needReply, MemorySegment body, int... fds) {
        long length = VhostUserHeaderLayout.HEADER_LENGTH + body.byteSize();
        int flags = VhostUserHeaderLayout.VERSION | (needReply ? VhostUserHeaderLayout.FLAG_NEED_REPLY : 0);
        try (Arena out = Arena.ofConfined()) {
            MemorySegment message = out.allocate(length, 8);
            message.set(ValueLayout.JAVA_INT, VhostUserHeaderLayout.REQUEST_OFFSET, request);
            message.set(ValueLayout.JAVA_INT, VhostUserHeaderLayout.FLAGS_OFFSET, flags);
            message.set(ValueLayout.JAVA_INT, VhostUserHeaderLayout.SIZE_OFFSET, (int) body.byteSize());
            MemorySegment.copy(body, 0, message, VhostUserHeaderLayout.HEADER_LENGTH, body.byteSize());
            socket.send(message, fds);
        } catch (NativeCallException e) {
            lost = true;
            throw new TransportException(name + ": sending " + VhostUserRequest.name(request) + " failed: " + e.getMessage());
        }
    }

    /**
     * Reads the reply to {@code request} and checks it.
     *
     * @return a heap copy of the payload, exactly {@code expectedLength} bytes
     */
    MemorySegment receive(int request, int expectedLength) {
        String what = VhostUserRequest.name(request);
        long deadlineNs = System.nanoTime() + timeoutMs * 1_000_000L;
        readFully(header, what, deadlineNs);
        // Read once into locals: the header is checked here and never read again.
        int replyRequest = header.get(ValueLayout.JAVA_INT, VhostUserHeaderLayout.REQUEST_OFFSET);
        int flags = header.get(ValueLayout.JAVA_INT, VhostUserHeaderLayout.FLAGS_OFFSET);
        int size = header.get(ValueLayout.JAVA_INT, VhostUserHeaderLayout.SIZE_OFFSET);
        if (replyRequest != request) {
            throw bad(what, "reply is for " + VhostUserRequest.name(replyRequest));
        }
        if ((flags & VhostUserHeaderLayout.VERSION_MASK) != VhostUserHeaderLayout.VERSION) {
            throw bad(what, "reply version is " + (flags & VhostUserHeaderLayout.VERSION_MASK) + ", not 1");
        }
        if ((flags & VhostUserHeaderLayout.FLAG_REPLY) == 0 || (flags & ~REPLY_FLAGS_MASK) != 0) {
            throw bad(what, "reply flags 0x" + Integer.toHexString(flags) + ": REPLY missing or unknown bits set");
        }
        if (size != expectedLength) {
            throw bad(what, "reply size " + Integer.toUnsignedString(size) + ", expected " + expectedLength);
        }
        MemorySegment body = payload.asSlice(0, size);
        readFully(body, what, deadlineNs);
        byte[] copy = new byte[size];
        MemorySegment.copy(body, 0, MemorySegment.ofArray(copy), 0, size);
        return MemorySegment.ofArray(copy);
    }

    /** Reads the u64 reply of {@code request}. */
    long receiveU64(int request) {
        return receive(request, VhostUserVringLayout.U64_LENGTH).get(ValueLayout.JAVA_LONG_UNALIGNED, 0);
    }

    private void readFully(MemorySegment buffer, String what, long deadlineNs) {
        long read = 0;
        while (read < buffer.byteSize()) {
            long remainingMs = (deadlineNs - System.nanoTime()) / 1_000_000L;
            if (remainingMs <= 0 || !awaitReadable((int) Math.min(remainingMs, Integer.MAX_VALUE))) {
                if (System.nanoTime() - deadlineNs >= 0) {
                    throw new TransportException(name + ": no reply to " + what + " within " + timeoutMs + " ms");
                }
                continue;
            }
            UnixSocket.Received r;
            try {
                r = socket.receive(buffer.asSlice(read));
            } catch (NativeCallException e) {
                lost = true;
                throw new TransportException(name + ": connection failed waiting for the reply to " + what + ": " + e.getMessage());
            }
            if (r.fds().length > 0) {
                for (int fd : r.fds()) {
                    Linux.close(fd);
                }
                throw bad(what, "reply carries " + r.fds().length + " descriptors");
            }
            if (r.endOfStream()) {
                lost = true;
                throw new TransportException(name + ": the backend closed the connection before replying to " + what);
            }
            read += r.byteCount();
        }
    }

    private boolean awaitReadable(int waitMs) {
        pollfd.set(ValueLayout.JAVA_INT, 0, socket.fd());
        pollfd.set(ValueLayout.JAVA_SHORT, 4, Linux.POLLIN);
        pollfd.set(ValueLayout.JAVA_SHORT, 6, (short) 0);
        try {
            return Linux.poll(pollfd, 1, waitMs) > 0;
        } catch (NativeCallException e) {
            throw new TransportException(name + ": poll on the socket failed: " + e.getMessage());
        }
    }

    private TransportException bad(String what, String why) {
        return new TransportException(name + ": bad reply to " + what + ": " + why);
    }

    /** Shuts the socket down, waking a reader; the backend sees end of stream. */
    void shutdown() {
        socket.shutdown();
    }

    @Override
    public void close() {
        socket.close();
        arena.close();
    }
}
