package dev.airlock.hypervisor.process;

import dev.airlock.memory.sys.Linux;

/**
 * A descriptor the daemon owns and hands out: closed when its owner and every queued send that
 * carries it have released it, so a send never carries a closed (or reused) descriptor number.
 */
final class SharedFd {
    private final int fd;
    private final String name;
    /** Guarded by {@code this}. */
    private int references = 1;

    SharedFd(int fd, String name) {
        this.fd = fd;
        this.name = name;
    }

    synchronized int retain() {
        if (references == 0) {
            throw new IllegalStateException(name + " is already closed");
        }
        references++;
        return fd;
    }

    void release() {
        boolean close;
        synchronized (this) {
            if (references == 0) {
                return;
            }
            close = --references == 0;
        }
        if (close) {
            Linux.close(fd);
        }
    }

    int fd() {
        return fd;
    }

    @Override
    public String toString() {
        return name + "(fd " + fd + ")";
    }
}
