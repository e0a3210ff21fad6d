package dev.airlock.vhostuser;

import dev.airlock.memory.sys.Errno;
import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.NativeCallException;
import dev.airlock.virtio.VirtqueueDevice;

/**
 * The back-end's state of one vring. The configuration fields belong to the connection thread;
 * {@link #running} changes only under the runner's model lock; the call and err fds are guarded by
 * this object's monitor, since the model signals from its own threads.
 */
final class Vring {
    final int index;
    int num;
    boolean addrSet;
    long descUva;
    long availUva;
    long usedUva;
    int base;
    boolean kickSet;
    boolean enabled;
    /** Non-null while the ring is started (a kick fd arrived, until GET_VRING_BASE); volatile for fault reports from model threads. */
    volatile VirtqueueDevice queue;
    /** Whether the model has the ring (started and enabled). */
    boolean running;
    private int callFd = -1;
    private int errFd = -1;

    Vring(int index) {
        this.index = index;
    }

    /** Replaces the call eventfd (or -1 for none) and closes the old one. */
    synchronized void setCallFd(int fd) {
        if (callFd >= 0) {
            Linux.close(callFd);
        }
        callFd = fd;
    }

    /** Replaces the error eventfd (or -1 for none) and closes the old one. */
    synchronized void setErrFd(int fd) {
        if (errFd >= 0) {
            Linux.close(errFd);
        }
        errFd = fd;
    }

    /** Sends a used buffer notification, if the front-end gave a call fd. */
    synchronized void call() {
        if (callFd >= 0) {
            signal(callFd);
        }
    }

    /** Adds 1 to a non-blocking eventfd; a counter the front-end filled to the top is signalled already. */
    private static void signal(int fd) {
        try {
            Linux.eventfdWrite(fd, 1);
        } catch (NativeCallException e) {
            if (e.errno() != Errno.EAGAIN) {
                throw e;
            }
        }
    }

    /** Signals the error eventfd, if any. */
    synchronized void error() {
        if (errFd >= 0) {
            signal(errFd);
        }
    }

    /** Forgets the configuration (not the fds) so the front-end can set the ring up again. */
    void clearConfiguration() {
        num = 0;
        addrSet = false;
        base = 0;
        enabled = false;
        kickSet = false;
        queue = null;
    }

    /** Closes the call and err fds. */
    synchronized void closeFds() {
        setCallFd(-1);
        setErrFd(-1);
    }
}
