package dev.airlock.vhostuser;

import dev.airlock.memory.sys.NativeCallException;
import dev.airlock.memory.sys.UnixSocket;
import dev.airlock.transport.VirtioDeviceModel;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * The back-end side of vhost-user (QEMU docs/interop/vhost-user.rst): serves a
 * {@link VirtioDeviceModel} to a VMM such as QEMU over a Unix socket it listens on. One front-end is
 * served at a time, each with a fresh model from the supplier; when a connection ends (the front-end
 * hung up, or sent a message that breaks the protocol, which is logged in one line naming the field)
 * the model is reset (and closed, if it is {@link AutoCloseable}), guest memory unmapped, every fd
 * closed, and the next connection is accepted.
 *
 * <p>Guest memory is whatever the front-end shares (SET_MEM_TABLE / ADD_MEM_REG), mapped whole; the
 * model's queues see it as one guest-physical address space, and every descriptor is checked
 * against it. Inflight I/O tracking (GET/SET_INFLIGHT_FD) lets a restarted back-end resubmit the
 * requests a killed one left in flight, under a QEMU chardev with {@code reconnect=1}.
 *
 * <pre>{@code
 * VhostUserBackend backend = VhostUserBackend.serve(Path.of("/tmp/blk.sock"), () -> openBlkDevice(image));
 * Runtime.getRuntime().addShutdownHook(new Thread(backend::close));   // SIGTERM ends it cleanly
 * backend.awaitClosed();
 * }</pre>
 */
public final class VhostUserBackend implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(VhostUserBackend.class.getName());
    private static final int S_IFMT = 0170000;
    private static final int S_IFSOCK = 0140000;
    private static final long JOIN_TIMEOUT_MS = 10_000;

    private final Path socketPath;
    private final Supplier<? extends VirtioDeviceModel> models;
    private final AtomicInteger served = new AtomicInteger();
    private final CountDownLatch closed = new CountDownLatch(1);
    private UnixSocket listener;
    private Thread thread;
    private volatile boolean closing;
    private volatile VhostUserConnection current;
    private volatile String lastError;

    /**
     * Creates a back-end; nothing happens until {@link #start()}.
     *
     * @param socket where to listen; a stale socket file there is replaced, any other file is refused
     * @param models makes the model for each connection
     */
    public VhostUserBackend(Path socket, Supplier<? extends VirtioDeviceModel> models) {
        this.socketPath = Objects.requireNonNull(socket, "socket");
        this.models = Objects.requireNonNull(models, "models");
    }

    /**
     * Creates a back-end and starts it.
     *
     * @param socket where to listen
     * @param models makes the model for each connection
     * @return the running back-end
     * @throws UncheckedIOException if the path holds a file that is not a socket
     * @throws NativeCallException  if the socket cannot be bound
     */
    public static VhostUserBackend serve(Path socket, Supplier<? extends VirtioDeviceModel> models) {
        VhostUserBackend backend = new VhostUserBackend(socket, models);
        backend.start();
        return backend;
    }

    /**
     * Binds the socket and starts the thread that accepts and serves connections.
     *
     * @throws UncheckedIOException  if the path holds a file that is not a socket
     * @throws NativeCallException   if the socket cannot be bound
     * @throws IllegalStateException if already started
     */
    public synchronized void start() {
        if (thread != null) {
            throw new IllegalStateException("vhost-user back-end on " + socketPath + " already started");
        }
        removeStaleSocket();
        listener = UnixSocket.listen(socketPath, 1);
        thread = Thread.ofPlatform().name("airlock-vhost-user-" + socketPath.getFileName()).unstarted(this::acceptLoop);
        thread.start();
    }

    private void removeStaleSocket() {
        try {
            if (!Files.exists(socketPath, LinkOption.NOFOLLOW_LINKS)) {
                return;
            }
            int mode = (Integer) Files.getAttribute(socketPath, "unix:mode", LinkOption.NOFOLLOW_LINKS);
            if ((mode & S_IFMT) != S_IFSOCK) {
                throw new UncheckedIOException(new IOException(socketPath + " exists and is not a socket"));
            }
            Files.delete(socketPath);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot replace " + socketPath, e);
        }
    }

    private void acceptLoop() {
        try {
            while (!closing) {
                UnixSocket client;
                try {
                    client = listener.accept();
                } catch (NativeCallException e) {
                    if (!closing) {
                        LOG.log(System.Logger.Level.ERROR, "vhost-user " + socketPath + ": accept failed: " + e.getMessage());
                    }
                    return;
                }
                serveOne(client);
            }
        } finally {
            closed.countDown();
        }
    }

    private void serveOne(UnixSocket client) {
        String name = "vhost-user:" + socketPath.getFileName() + "#" + (served.get() + 1);
        VhostUserConnection connection;
        try {
            connection = new VhostUserConnection(name, client, models.get());
        } catch (RuntimeException e) {
            lastError = "cannot set up the connection: " + e;
            LOG.log(System.Logger.Level.ERROR, name + ": " + lastError);
            client.close();
            served.incrementAndGet();
            return;
        }
        current = connection;
        if (closing) {
            connection.shutdown();
        }
        try {
            connection.serve();
            LOG.log(System.Logger.Level.INFO, name + ": front-end disconnected");
        } catch (VhostUserProtocolException e) {
            lastError = e.getMessage();
            LOG.log(System.Logger.Level.WARNING, name + ": closing the connection: " + e.getMessage());
        } catch (RuntimeException e) {
            lastError = e.getClass().getSimpleName() + ": " + e.getMessage();
            if (!closing) {
                LOG.log(System.Logger.Level.WARNING, name + ": closing the connection: " + lastError);
            }
        } finally {
            current = null;
            try {
                connection.close();
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, name + ": cleanup failed: " + e);
            }
            served.incrementAndGet();
        }
    }

    /**
     * The socket path.
     *
     * @return the path given at creation
     */
    public Path socket() {
        return socketPath;
    }

    /**
     * How many connections have ended (normally or not).
     *
     * @return the count
     */
    public int connectionsServed() {
        return served.get();
    }

    /**
     * Why the most recent connection that failed was closed, for example
     * {@code "SET_VRING_NUM.num = 3 (0x3): not a power of two from 1 to 256"}.
     *
     * @return the message, or null if none failed
     */
    public String lastError() {
        return lastError;
    }

    /**
     * Waits until the back-end is closed (or its accept loop ends).
     *
     * @throws InterruptedException if interrupted
     */
    public void awaitClosed() throws InterruptedException {
        closed.await();
    }

    /**
     * Waits until {@code count} connections have ended.
     *
     * @param count   the number of ended connections to wait for
     * @param timeout how long to wait at most
     * @param unit    the unit of {@code timeout}
     * @return whether that many ended in time
     * @throws InterruptedException if interrupted
     */
    public boolean awaitConnectionsServed(int count, long timeout, TimeUnit unit) throws InterruptedException {
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        while (served.get() < count) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.sleep(5);
        }
        return true;
    }

    /** Stops accepting, ends the current connection (model reset, memory unmapped, fds closed) and removes the socket file. */
    @Override
    public void close() {
        Thread t;
        synchronized (this) {
            if (closing) {
                return;
            }
            closing = true;
            t = thread;
        }
        if (listener != null) {
            listener.shutdown();
        }
        VhostUserConnection c = current;
        if (c != null) {
            c.shutdown();
        }
        if (t != null) {
            try {
                t.join(JOIN_TIMEOUT_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        } else {
            closed.countDown();
        }
        if (listener != null) {
            listener.close();
        }
        try {
            Files.deleteIfExists(socketPath);
        } catch (IOException e) {
            LOG.log(System.Logger.Level.WARNING, "cannot remove " + socketPath + ": " + e.getMessage());
        }
    }
}
