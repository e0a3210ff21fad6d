package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.RefusalReason;
import dev.airlock.memory.sys.NativeCallException;
import dev.airlock.memory.sys.UnixSocket;

import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * The client end of a daemon connection: requests from any thread, each waiting for the response
 * with its id; one reader thread that completes them and hands events (id 0) to a consumer, in
 * order. When the connection ends, waiting and later calls fail with {@link ConnectionClosedException}.
 */
final class ClientChannel implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(ClientChannel.class.getName());

    /** The daemon connection is gone. */
    static final class ConnectionClosedException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        ConnectionClosedException(String message) {
            super(message);
        }
    }

    private final FrameChannel channel;
    private final ConcurrentHashMap<Long, CompletableFuture<FrameChannel.Frame>> pending = new ConcurrentHashMap<>();
    private final AtomicLong nextId = new AtomicLong(1);
    private Thread reader;
    private volatile boolean ended;

    private ClientChannel(UnixSocket socket) {
        this.channel = new FrameChannel(socket);
    }

    static ClientChannel connect(Path socketPath) {
        return new ClientChannel(UnixSocket.connect(socketPath));
    }

    /** Sends a request and reads its response on the calling thread, before the reader runs. */
    FrameChannel.Reader handshake(int type, FrameChannel.Writer payload) {
        long id = nextId.getAndIncrement();
        channel.send(type, id, payload);
        FrameChannel.Frame frame = channel.receive();
        if (frame == null) {
            throw new ConnectionClosedException("the daemon closed the connection during the handshake");
        }
        if (frame.type() != WireLayout.RESPONSE || frame.requestId() != id || frame.fds().length > 0) {
            frame.closeFds();
            throw new ProtocolViolationException("the daemon answered the handshake with frame type " + frame.type());
        }
        return check(frame.payload());
    }

    /** Starts the reader; events go to {@code events}, then {@code onEnd} runs once. */
    void start(String threadName, Consumer<FrameChannel.Frame> events, Runnable onEnd) {
        reader = new Thread(() -> readLoop(events, onEnd), threadName);
        reader.setDaemon(true);
        reader.start();
    }

    private void readLoop(Consumer<FrameChannel.Frame> events, Runnable onEnd) {
        try {
            while (true) {
                FrameChannel.Frame frame = channel.receive();
                if (frame == null) {
                    break;
                }
                if (frame.type() == WireLayout.RESPONSE) {
                    CompletableFuture<FrameChannel.Frame> waiter = pending.remove(frame.requestId());
                    if (waiter == null || frame.fds().length > 0) {
                        frame.closeFds();
                        throw new ProtocolViolationException("unexpected response " + frame.requestId());
                    }
                    waiter.complete(frame);
                } else {
                    events.accept(frame);
                }
            }
        } catch (ProtocolViolationException e) {
            LOG.log(System.Logger.Level.ERROR, "the daemon broke the protocol: " + e.getMessage());
        } catch (NativeCallException e) {
            LOG.log(System.Logger.Level.DEBUG, "daemon connection ended: " + e.getMessage());
        } finally {
            ended = true;
            ConnectionClosedException closed = new ConnectionClosedException("the daemon connection is closed");
            pending.values().forEach(f -> f.completeExceptionally(closed));
            pending.clear();
            try {
                onEnd.run();
            } finally {
                channel.close();
            }
        }
    }

    /** Sends a request and waits for its response; returns the OK payload or throws the refusal. */
    FrameChannel.Reader call(int type, FrameChannel.Writer payload) {
        long id = nextId.getAndIncrement();
        CompletableFuture<FrameChannel.Frame> response = new CompletableFuture<>();
        pending.put(id, response);
        if (ended) {
            pending.remove(id);
            throw new ConnectionClosedException("the daemon connection is closed");
        }
        try {
            channel.send(type, id, payload);
        } catch (NativeCallException e) {
            pending.remove(id);
            throw new ConnectionClosedException("the daemon connection is closed: " + e.getMessage());
        }
        FrameChannel.Frame frame;
        boolean interrupted = false;
        while (true) {
            try {
                frame = response.get();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            } catch (ExecutionException e) {
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
                throw (RuntimeException) e.getCause();
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        return check(frame.payload());
    }

    private static FrameChannel.Reader check(FrameChannel.Reader in) {
        int status = in.u8();
        switch (status) {
            case WireLayout.STATUS_OK -> {
                return in;
            }
            case WireLayout.STATUS_REFUSED -> {
                RefusalReason reason = RequestCodec.enumValue(RefusalReason.values(), in.u8(), "refusal reason");
                throw new HypervisorRefusedException(reason, in.string());
            }
            case WireLayout.STATUS_ILLEGAL -> throw new IllegalArgumentException(in.string());
            default -> throw new ProtocolViolationException("response status " + status);
        }
    }

    boolean ended() {
        return ended;
    }

    /** Ends the connection and waits for the reader. */
    @Override
    public void close() {
        try {
            channel.shutdown();
        } catch (NativeCallException e) {
            LOG.log(System.Logger.Level.DEBUG, "shutdown: " + e.getMessage());
        }
        if (reader == null) {
            channel.close();
        } else if (reader != Thread.currentThread()) {
            try {
                reader.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
