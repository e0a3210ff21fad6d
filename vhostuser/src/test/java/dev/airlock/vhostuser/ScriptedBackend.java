package dev.airlock.vhostuser;

import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.UnixSocket;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

/**
 * A hostile vhost-user backend for frontend tests: answers the handshake like a well-behaved
 * backend (VERSION_1 and PROTOCOL_FEATURES; REPLY_ACK and CONFIG) until the request {@code target}
 * arrives, which it answers with {@code badReply} (raw bytes, header included), with nothing at
 * all when that is empty, or by closing when it is null.
 */
final class ScriptedBackend implements AutoCloseable {
    static final long FEATURES = 1L << 32 | 1L << VhostUserRequest.F_PROTOCOL_FEATURES;
    static final long PROTOCOL = 1L << VhostUserRequest.PROTOCOL_F_REPLY_ACK | 1L << VhostUserRequest.PROTOCOL_F_CONFIG;

    private final UnixSocket listener;
    private final Thread thread;
    private volatile UnixSocket connection;

    private final long protocol;
    private final int occurrence;

    ScriptedBackend(Path path, int target, byte[] badReply) {
        this(path, PROTOCOL, target, 1, badReply);
    }

    /** Offers {@code protocol} and misbehaves at the {@code occurrence}-th (from 1) {@code target} request. */
    ScriptedBackend(Path path, long protocol, int target, int occurrence, byte[] badReply) {
        this.protocol = protocol;
        this.occurrence = occurrence;
        this.listener = UnixSocket.listen(path, 1);
        this.thread = Thread.ofPlatform().daemon().name("scripted-backend").start(() -> serve(target, badReply));
    }

    /** A reply header and payload. */
    static byte[] reply(int request, int flags, byte[] payload) {
        return ByteBuffer.allocate(12 + payload.length).order(ByteOrder.nativeOrder())
                .putInt(request).putInt(flags).putInt(payload.length).put(payload).array();
    }

    static byte[] u64(long value) {
        return ByteBuffer.allocate(8).order(ByteOrder.nativeOrder()).putLong(value).array();
    }

    private void serve(int target, byte[] badReply) {
        try (UnixSocket s = listener.accept(); Arena arena = Arena.ofConfined()) {
            connection = s;
            MemorySegment header = arena.allocate(12);
            MemorySegment payload = arena.allocate(4096);
            int seen = 0;
            while (true) {
                int[] fds = s.receiveFully(header);
                if (fds == null) {
                    return;
                }
                int request = header.get(ValueLayout.JAVA_INT, 0);
                int flags = header.get(ValueLayout.JAVA_INT, 4);
                int size = header.get(ValueLayout.JAVA_INT, 8);
                if (size > 0) {
                    int[] more = s.receiveFully(payload.asSlice(0, size));
                    for (int fd : more == null ? new int[0] : more) {
                        Linux.close(fd);
                    }
                }
                for (int fd : fds) {
                    Linux.close(fd);
                }
                if (request == target && ++seen >= occurrence) {
                    if (badReply == null) {
                        return;
                    }
                    if (badReply.length > 0) {
                        s.send(badReply);
                    }
                    continue;
                }
                answer(s, request, flags, payload.asSlice(0, size));
            }
        } catch (RuntimeException e) {
            // the frontend closed on us: the test checks the frontend's side
        }
    }

    private void answer(UnixSocket s, int request, int flags, MemorySegment payload) {
        byte[] body = switch (request) {
            case VhostUserRequest.GET_FEATURES -> u64(FEATURES);
            case VhostUserRequest.GET_PROTOCOL_FEATURES -> u64(protocol);
            case VhostUserRequest.GET_CONFIG -> payload.toArray(ValueLayout.JAVA_BYTE);
            case VhostUserRequest.GET_VRING_BASE -> payload.toArray(ValueLayout.JAVA_BYTE);
            default -> (flags & VhostUserHeaderLayout.FLAG_NEED_REPLY) != 0 ? u64(0) : null;
        };
        if (body != null) {
            s.send(reply(request, VhostUserHeaderLayout.VERSION | VhostUserHeaderLayout.FLAG_REPLY, body));
        }
    }

    @Override
    public void close() throws InterruptedException {
        UnixSocket c = connection;
        if (c != null) {
            quietly(c::shutdown); // already closed when the script ended the connection
        }
        quietly(listener::shutdown);
        thread.join(5_000);
        listener.close();
    }

    private static void quietly(Runnable r) {
        try {
            r.run();
        } catch (RuntimeException e) {
            // closed already
        }
    }
}
