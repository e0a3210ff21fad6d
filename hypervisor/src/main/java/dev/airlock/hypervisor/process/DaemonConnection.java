package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.memory.sys.NativeCallException;
import dev.airlock.memory.sys.UnixSocket;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * One client of the daemon: a reader thread that decodes and serves requests one at a time, and a
 * writer thread that sends responses and events in order. At most {@link #MAX_QUEUED} frames wait
 * to be sent; a client that lets more pile up (it stopped reading) is dropped. A malformed frame
 * drops the connection with a log line; the daemon keeps serving everyone else.
 */
final class DaemonConnection {
    private static final System.Logger LOG = System.getLogger(DaemonConnection.class.getName());
    static final int MAX_QUEUED = 4096;

    private record Outbound(int type, long requestId, FrameChannel.Writer payload, SharedFd[] fds) {
    }

    private static final Outbound SHUTDOWN = new Outbound(-1, 0, null, new SharedFd[0]);
    private static final Outbound END = new Outbound(-2, 0, null, new SharedFd[0]);

    private final HypervisorDaemon daemon;
    private final FrameChannel channel;
    private final LinkedBlockingQueue<Outbound> outbound = new LinkedBlockingQueue<>();
    private final Thread reader;
    private final Thread writer;
    private final UnixSocket.PeerCredentials peer;
    /** The VM this connection attached as; written by the reader under the state lock. */
    volatile DaemonVm vm;
    /** Set if this connection is a backend process's (under the state lock, before {@link #vm}). */
    volatile DaemonBackend backend;
    private boolean control;

    DaemonConnection(HypervisorDaemon daemon, UnixSocket socket, int serial) {
        this.daemon = daemon;
        this.channel = new FrameChannel(socket);
        this.peer = socket.peerCredentials();
        this.reader = new Thread(this::readLoop, "airlock-daemon-conn" + serial + "-pid" + peer.pid());
        this.writer = new Thread(this::writeLoop, "airlock-daemon-conn" + serial + "-writer");
        reader.setDaemon(true);
        writer.setDaemon(true);
    }

    void start() {
        writer.start();
        reader.start();
    }

    Thread readerThread() {
        return reader;
    }

    // ---- outbound ------------------------------------------------------------------------------

    /** Queues an event, retaining its descriptors until sent. */
    void event(int type, FrameChannel.Writer payload, SharedFd... fds) {
        enqueue(type, 0, payload, fds);
    }

    void respond(long requestId, FrameChannel.Writer payload) {
        enqueue(WireLayout.RESPONSE, requestId, payload);
    }

    private void enqueue(int type, long requestId, FrameChannel.Writer payload, SharedFd... fds) {
        if (outbound.size() >= MAX_QUEUED) {
            LOG.log(System.Logger.Level.WARNING, "dropping " + who() + ": more than " + MAX_QUEUED + " frames unread");
            closeAfterFlush();
            return;
        }
        List<SharedFd> retained = new ArrayList<>(fds.length);
        try {
            for (SharedFd fd : fds) {
                fd.retain();
                retained.add(fd);
            }
        } catch (IllegalStateException e) {
            retained.forEach(SharedFd::release);
            return; // the resource went away before it could be handed over
        }
        outbound.add(new Outbound(type, requestId, payload, fds));
    }

    /** Sends what is queued, then shuts the socket down (which ends the reader). */
    void closeAfterFlush() {
        outbound.add(SHUTDOWN);
    }

    private void writeLoop() {
        boolean broken = false;
        while (true) {
            Outbound next;
            try {
                next = outbound.take();
            } catch (InterruptedException e) {
                continue; // ended by END only
            }
            if (next == END) {
                break;
            }
            if (next == SHUTDOWN) {
                shutdownQuietly();
                continue;
            }
            try {
                if (!broken) {
                    int[] fds = new int[next.fds.length];
                    for (int i = 0; i < fds.length; i++) {
                        fds[i] = next.fds[i].fd();
                    }
                    channel.send(next.type, next.requestId, next.payload, fds);
                }
            } catch (NativeCallException e) {
                broken = true;
                LOG.log(System.Logger.Level.DEBUG, "send to " + who() + " failed: " + e.getMessage());
                shutdownQuietly();
            } finally {
                for (SharedFd fd : next.fds) {
                    fd.release();
                }
            }
        }
    }

    private void shutdownQuietly() {
        try {
            channel.shutdown();
        } catch (NativeCallException e) {
            LOG.log(System.Logger.Level.DEBUG, "shutdown of " + who() + ": " + e.getMessage());
        }
    }

    // ---- inbound -------------------------------------------------------------------------------

    private void readLoop() {
        try {
            if (peer.uid() != daemon.uid()) {
                throw new ProtocolViolationException("uid " + peer.uid() + " is not the daemon's uid " + daemon.uid());
            }
            while (true) {
                FrameChannel.Frame frame = channel.receive();
                if (frame == null) {
                    break;
                }
                if (frame.fds().length > 0) {
                    frame.closeFds();
                    throw new ProtocolViolationException("frame type " + frame.type() + " carries " + frame.fds().length
                            + " descriptors; clients send none");
                }
                if (frame.requestId() == 0) {
                    throw new ProtocolViolationException("frame type " + frame.type() + " has request id 0");
                }
                if (!serve(frame)) {
                    break;
                }
            }
        } catch (ProtocolViolationException e) {
            LOG.log(System.Logger.Level.WARNING, "dropping " + who() + ": " + e.getMessage());
        } catch (NativeCallException e) {
            LOG.log(System.Logger.Level.DEBUG, who() + " ended: " + e.getMessage());
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.ERROR, "dropping " + who() + " after an internal error", e);
        } finally {
            daemon.state().connectionClosed(this);
            outbound.add(SHUTDOWN);
            outbound.add(END);
            joinQuietly(writer);
            for (Outbound left : outbound) {
                for (SharedFd fd : left.fds) {
                    fd.release();
                }
            }
            outbound.clear();
            channel.close();
            daemon.connectionEnded(this);
        }
    }

    /** Serves one request; returns false if the connection must end after it. */
    private boolean serve(FrameChannel.Frame frame) {
        long id = frame.requestId();
        if (!control && vm == null) {
            return authenticate(frame);
        }
        try {
            FrameChannel.Writer ok = control
                    ? RequestCodec.serveControl(daemon.state(), frame)
                    : RequestCodec.serveVm(daemon.state(), vm, backend, frame);
            respond(id, ok);
        } catch (HypervisorRefusedException e) {
            respond(id, RequestCodec.refusal(e));
        } catch (IllegalArgumentException | IllegalStateException e) {
            respond(id, new FrameChannel.Writer().u8(WireLayout.STATUS_ILLEGAL).string(String.valueOf(e.getMessage())));
        }
        return true;
    }

    private boolean authenticate(FrameChannel.Frame frame) {
        FrameChannel.Reader in = frame.payload();
        switch (frame.type()) {
            case WireLayout.HELLO_CONTROL -> {
                byte[] credential = in.raw(WireLayout.CREDENTIAL_LENGTH);
                in.end();
                if (!daemon.controlCredential().matches(credential)) {
                    respond(frame.requestId(), new FrameChannel.Writer().u8(WireLayout.STATUS_REFUSED)
                            .u8(dev.airlock.hypervisor.RefusalReason.NOT_GRANTED.ordinal())
                            .string("pid " + peer.pid() + " presented a wrong control credential"));
                    LOG.log(System.Logger.Level.WARNING, "refused control client pid " + peer.pid() + ": wrong credential");
                    return false;
                }
                control = true;
                respond(frame.requestId(), new FrameChannel.Writer().u8(WireLayout.STATUS_OK)
                        .i32(daemon.state().config.maxMessageBytes()));
                return true;
            }
            case WireLayout.ATTACH -> {
                byte[] credential = in.raw(WireLayout.CREDENTIAL_LENGTH);
                in.end();
                try {
                    vm = daemon.state().attach(credential, peer.pid(), this, frame.requestId());
                    return true;
                } catch (HypervisorRefusedException e) {
                    LOG.log(System.Logger.Level.WARNING, "refused attach: " + e.getMessage());
                    respond(frame.requestId(), RequestCodec.refusal(e));
                    return false;
                }
            }
            default -> throw new ProtocolViolationException("first frame is type " + frame.type()
                    + ", not HELLO_CONTROL or ATTACH");
        }
    }

    private String who() {
        DaemonVm attached = vm;
        return "connection from pid " + peer.pid() + (attached != null ? " (" + attached.describe()
                + (backend != null ? ", backend for " + backend.secondary : "") + ")" : control ? " (control)" : "");
    }

    /** Ends the connection from the daemon's side (daemon shutdown). */
    void shutdown() {
        shutdownQuietly();
    }

    private static void joinQuietly(Thread thread) {
        boolean interrupted = false;
        while (true) {
            try {
                thread.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
