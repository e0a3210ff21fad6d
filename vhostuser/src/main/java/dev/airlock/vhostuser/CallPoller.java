package dev.airlock.vhostuser;

import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.NativeCallException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.IntConsumer;

/**
 * The frontend's interrupt thread: waits on every queue's call and err eventfds and on the socket. A
 * signalled call fd is drained and reported ({@code onCall}); a signalled err fd (SET_VRING_ERR: the
 * backend found the queue unusable) is drained and reported with its queue ({@code onError}); a
 * hang-up or error on the socket (the backend died or closed) is reported once ({@code onHangUp}). The socket is polled for hang-up only
 * (no {@code POLLIN}), so it never competes with the thread reading replies.
 */
final class CallPoller implements Runnable {
    /** No timeout: the wake-up eventfd ends the wait for close(). */
    private static final int POLL_TIMEOUT_MS = -1;
    private static final long JOIN_TIMEOUT_MS = 5_000;

    private final int[] callFds;
    private final int[] errFds;
    private final int socketFd;
    private final int wakeFd;
    private final Runnable onCall;
    private final IntConsumer onError;
    private final Runnable onHangUp;
    private final Thread thread;
    private volatile boolean stopping;
    private boolean closedFd;

    CallPoller(String name, int[] callFds, int[] errFds, int socketFd, Runnable onCall, IntConsumer onError, Runnable onHangUp) {
        this.callFds = callFds.clone();
        this.errFds = errFds.clone();
        this.socketFd = socketFd;
        this.onCall = onCall;
        this.onError = onError;
        this.onHangUp = onHangUp;
        this.wakeFd = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
        this.thread = Thread.ofPlatform().daemon().name("airlock-vhost-call-" + name).unstarted(this);
    }

    void start() {
        thread.start();
    }

    @Override
    public void run() {
        int queues = callFds.length;
        int count = 2 * queues + 2;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pollfds = arena.allocate(Linux.POLLFD_LENGTH * count, 8);
            entry(pollfds, 0, wakeFd, Linux.POLLIN);
            entry(pollfds, 1, socketFd, (short) 0);
            for (int q = 0; q < queues; q++) {
                entry(pollfds, q + 2, callFds[q], Linux.POLLIN);
                entry(pollfds, queues + q + 2, errFds[q], Linux.POLLIN);
            }
            boolean socketUp = true;
            while (!stopping) {
                for (int i = 0; i < count; i++) {
                    pollfds.set(ValueLayout.JAVA_SHORT, i * Linux.POLLFD_LENGTH + 6, (short) 0);
                }
                if (Linux.poll(pollfds, count, POLL_TIMEOUT_MS) <= 0 || stopping) {
                    continue;
                }
                if (revents(pollfds, 0) != 0) {
                    Linux.eventfdRead(wakeFd);
                }
                if (socketUp && revents(pollfds, 1) != 0) {
                    socketUp = false;
                    entry(pollfds, 1, -1, (short) 0); // a negative fd is ignored by poll
                    onHangUp.run();
                }
                boolean called = false;
                for (int q = 0; q < queues; q++) {
                    if ((revents(pollfds, q + 2) & Linux.POLLIN) != 0 && Linux.eventfdRead(callFds[q]) != 0) {
                        called = true;
                    }
                    if ((revents(pollfds, queues + q + 2) & Linux.POLLIN) != 0 && Linux.eventfdRead(errFds[q]) != 0) {
                        onError.accept(q);
                    }
                }
                if (called) {
                    onCall.run();
                }
            }
        } catch (NativeCallException e) {
            if (!stopping) {
                onHangUp.run();
            }
        }
    }

    private static short revents(MemorySegment pollfds, int index) {
        return pollfds.get(ValueLayout.JAVA_SHORT, index * Linux.POLLFD_LENGTH + 6);
    }

    private static void entry(MemorySegment pollfds, int index, int fd, short events) {
        long base = index * Linux.POLLFD_LENGTH;
        pollfds.set(ValueLayout.JAVA_INT, base, fd);
        pollfds.set(ValueLayout.JAVA_SHORT, base + 4, events);
        pollfds.set(ValueLayout.JAVA_SHORT, base + 6, (short) 0);
    }

    /** Stops and joins the thread and closes its wake-up fd (the call and err fds belong to the caller). Idempotent. */
    synchronized void close() {
        if (closedFd) {
            return;
        }
        stopping = true;
        Linux.eventfdWrite(wakeFd, 1);
        if (thread.isAlive() && Thread.currentThread() != thread) {
            try {
                thread.join(JOIN_TIMEOUT_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        closedFd = true;
        Linux.close(wakeFd);
    }
}
