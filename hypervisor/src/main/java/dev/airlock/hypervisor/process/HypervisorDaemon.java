package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.memory.sys.NativeCallException;
import dev.airlock.memory.sys.UnixSocket;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The hypervisor of the multi-process runtime: a daemon serving a Unix socket. It owns the VMs,
 * their credentials, the grants, the message queues and the shared regions' memfds; every VM is a
 * separate OS process that attaches with the credential issued when its VM was created
 * ({@link RemoteVmContext#attach}), and control-plane clients ({@link RemoteHypervisor}) present
 * the daemon's control credential. Every peer must also run under the daemon's uid
 * ({@code SO_PEERCRED}).
 *
 * <p>One reader and one writer thread per connection; requests are served in order under one lock.
 * A malformed request drops its connection with a log line; the daemon keeps serving. A VM whose
 * connection closes (its process exited or was killed) is destroyed: its grants revoked, its peers
 * sent {@code PEER_GONE}, the daemon's descriptors for it closed. The wire format is
 * {@link WireLayout}.
 */
public final class HypervisorDaemon implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(HypervisorDaemon.class.getName());

    private final Path socketPath;
    private final UnixSocket listener;
    private final DaemonState state;
    private final Credential controlCredential = Credential.random();
    private final int uid;
    private final Set<DaemonConnection> connections = ConcurrentHashMap.newKeySet();
    private final Thread acceptor;
    private volatile boolean closed;
    private int serial;

    private HypervisorDaemon(Path socketPath, HypervisorConfig config) {
        this.socketPath = socketPath;
        this.state = new DaemonState(config);
        try {
            this.uid = (int) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read this process's uid", e);
        }
        this.listener = UnixSocket.listen(socketPath, 64);
        this.acceptor = new Thread(this::acceptLoop, "airlock-daemon-accept");
        acceptor.setDaemon(true);
    }

    /**
     * Starts a daemon listening on {@code socketPath}, which must not exist.
     *
     * @param socketPath where to listen (at most 107 bytes)
     * @param config     the settings of every VM
     * @return the running daemon
     */
    public static HypervisorDaemon start(Path socketPath, HypervisorConfig config) {
        Objects.requireNonNull(socketPath, "socketPath");
        Objects.requireNonNull(config, "config");
        HypervisorDaemon daemon = new HypervisorDaemon(socketPath, config);
        daemon.acceptor.start();
        LOG.log(System.Logger.Level.INFO, "hypervisor daemon listening on " + socketPath);
        return daemon;
    }

    /**
     * Where the daemon listens.
     *
     * @return the socket path
     */
    public Path socketPath() {
        return socketPath;
    }

    /**
     * The credential a control-plane client presents ({@link RemoteHypervisor#connect}). A secret:
     * whoever holds it may create and destroy VMs.
     *
     * @return the control credential
     */
    public Credential controlCredential() {
        return controlCredential;
    }

    /**
     * The number of open client connections.
     *
     * @return the count
     */
    public int connectionCount() {
        return connections.size();
    }

    /**
     * The reader threads of the open connections, for leak checks.
     *
     * @return a snapshot
     */
    public List<Thread> connectionThreads() {
        return connections.stream().map(DaemonConnection::readerThread).toList();
    }

    DaemonState state() {
        return state;
    }

    int uid() {
        return uid;
    }

    void connectionEnded(DaemonConnection connection) {
        connections.remove(connection);
    }

    private void acceptLoop() {
        while (!closed) {
            UnixSocket socket;
            try {
                socket = listener.accept();
            } catch (NativeCallException e) {
                if (!closed) {
                    LOG.log(System.Logger.Level.ERROR, "accept on " + socketPath + " failed: " + e.getMessage());
                }
                return;
            }
            if (closed) {
                socket.close();
                return;
            }
            try {
                DaemonConnection connection = new DaemonConnection(this, socket, ++serial);
                connections.add(connection);
                connection.start();
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "could not serve a new connection: " + e.getMessage());
                socket.close();
            }
        }
    }

    /**
     * Stops serving: destroys every VM (their processes see their connections close), ends every
     * connection, and removes the socket file.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        state.close();
        listener.shutdown();
        joinQuietly(acceptor);
        listener.close();
        for (DaemonConnection connection : List.copyOf(connections)) {
            connection.shutdown();
        }
        for (DaemonConnection connection : List.copyOf(connections)) {
            joinQuietly(connection.readerThread());
        }
        try {
            Files.deleteIfExists(socketPath);
        } catch (IOException e) {
            LOG.log(System.Logger.Level.WARNING, "could not remove " + socketPath + ": " + e.getMessage());
        }
    }

    private static void joinQuietly(Thread thread) {
        try {
            thread.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
