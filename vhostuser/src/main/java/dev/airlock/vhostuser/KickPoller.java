package dev.airlock.vhostuser;

import dev.airlock.memory.sys.Linux;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * The thread that waits for kicks: one {@code poll} over every queue's kick eventfd plus a wake-up
 * eventfd. A readable kick fd is read (clearing it) and reported with the queue index.
 *
 * <p><b>Descriptor lifetime.</b> The connection thread installs and replaces kick fds with
 * {@link #setKickFd}; a replaced fd is only closed by the poller thread itself, between two polls,
 * so a number that is being polled is never closed and reused underneath it. {@link #close} closes
 * what is left once the thread has ended.
 */
final class KickPoller implements Runnable {
    private static final long JOIN_TIMEOUT_MS = 10_000;

    private final int[] kickFds;
    private final List<Integer> retired = new ArrayList<>();
    private final int wakeFd;
    private final IntConsumer onKick;
    private final Thread thread;
    private volatile boolean stopping;

    KickPoller(String name, int queueCount, IntConsumer onKick) {
        this.kickFds = new int[queueCount];
        Arrays.fill(kickFds, -1);
        this.onKick = onKick;
        this.wakeFd = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
        this.thread = Thread.ofPlatform().daemon().name("airlock-vhost-kick-" + name).unstarted(this);
    }

    void start() {
        thread.start();
    }

    /** Installs the kick fd of a queue (or -1 for none); the previous one is closed by the poller. */
    synchronized void setKickFd(int queue, int fd) {
        if (kickFds[queue] >= 0) {
            retired.add(kickFds[queue]);
        }
        kickFds[queue] = fd;
        Linux.eventfdWrite(wakeFd, 1);
    }

    @Override
    public void run() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pollfds = arena.allocate(Linux.POLLFD_LENGTH * (kickFds.length + 1), 8);
            int[] queueOf = new int[kickFds.length + 1];
            while (!stopping) {
                int count = prepare(pollfds, queueOf);
                if (Linux.poll(pollfds, count, -1) <= 0) {
                    continue;
                }
                for (int i = 0; i < count; i++) {
                    short revents = pollfds.get(ValueLayout.JAVA_SHORT, i * Linux.POLLFD_LENGTH + 6);
                    if (revents == 0) {
                        continue;
                    }
                    int fd = pollfds.get(ValueLayout.JAVA_INT, i * Linux.POLLFD_LENGTH);
                    if (i == 0) {
                        Linux.eventfdRead(wakeFd);
                    } else if ((revents & (Linux.POLLERR | Linux.POLLHUP | Linux.POLLNVAL)) != 0) {
                        dropBroken(queueOf[i], fd);
                    } else if (!stopping) {
                        Linux.eventfdRead(fd);
                        onKick.accept(queueOf[i]);
                    }
                }
            }
        }
    }

    /** Closes retired fds and fills the pollfd array: the wake-up fd first, then each kick fd. */
    private synchronized int prepare(MemorySegment pollfds, int[] queueOf) {
        for (int fd : retired) {
            Linux.close(fd);
        }
        retired.clear();
        int count = 0;
        count = entry(pollfds, count, wakeFd);
        for (int q = 0; q < kickFds.length; q++) {
            if (kickFds[q] >= 0) {
                queueOf[count] = q;
                count = entry(pollfds, count, kickFds[q]);
            }
        }
        return count;
    }

    private static int entry(MemorySegment pollfds, int index, int fd) {
        long base = index * Linux.POLLFD_LENGTH;
        pollfds.set(ValueLayout.JAVA_INT, base, fd);
        pollfds.set(ValueLayout.JAVA_SHORT, base + 4, Linux.POLLIN);
        pollfds.set(ValueLayout.JAVA_SHORT, base + 6, (short) 0);
        return index + 1;
    }

    /** A kick fd that is not a readable eventfd any more: stop polling it (it would spin). */
    private synchronized void dropBroken(int queue, int fd) {
        if (kickFds[queue] == fd) {
            kickFds[queue] = -1;
            retired.add(fd);
        }
    }

    /** Stops and joins the thread, then closes every descriptor. */
    void close() {
        stopping = true;
        Linux.eventfdWrite(wakeFd, 1);
        if (thread.isAlive() && Thread.currentThread() != thread) {
            try {
                thread.join(JOIN_TIMEOUT_MS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        synchronized (this) {
            for (int fd : retired) {
                Linux.close(fd);
            }
            retired.clear();
            for (int q = 0; q < kickFds.length; q++) {
                if (kickFds[q] >= 0) {
                    Linux.close(kickFds[q]);
                    kickFds[q] = -1;
                }
            }
        }
        Linux.close(wakeFd);
    }
}
