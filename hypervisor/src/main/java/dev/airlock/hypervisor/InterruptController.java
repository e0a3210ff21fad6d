package dev.airlock.hypervisor;

import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.locks.LockSupport;

/**
 * A VM's interrupt controller: the pending causes per peer and the thread that delivers them.
 *
 * <p>Raising sets the cause's bit in the link's pending word; the raise that makes the word
 * non-zero queues the link and unparks the thread. The thread takes a link, exchanges its word with
 * zero and delivers each cause. Causes raised again before the exchange coalesce into one
 * delivery; a cause raised after it finds the word zero and queues the link again, so none is lost.
 *
 * <p>There is one thread per running period: {@link #start} creates it, {@link #stop} asks it to
 * finish and hands it back for joining. Pending links stay queued across a stop, and the next
 * thread delivers them. A new thread first waits for its predecessor to end, so the handler never
 * runs on two threads at once, even when a handler stops and restarts its own VM.
 */
final class InterruptController {
    private final String threadName;
    private final Vm vm;
    /** Links with a non-zero pending word, each at most once. */
    private final ConcurrentLinkedQueue<Link> ready = new ConcurrentLinkedQueue<>();
    private volatile InterruptThread current;
    /** The last thread started, whether or not it has ended; guarded by {@code this}. */
    private InterruptThread latest;

    InterruptController(Vm vm, String threadName) {
        this.vm = vm;
        this.threadName = threadName;
    }

    void raise(Link link, InterruptCause cause) {
        if (link.setPending(cause) == 0) {
            ready.offer(link);
            // Read after the offer: a thread started later polls the queue before parking, and a
            // thread parked now is the one read here.
            InterruptThread thread = current;
            if (thread != null) {
                LockSupport.unpark(thread);
            }
        }
    }

    synchronized void start() {
        if (current != null) {
            return;
        }
        InterruptThread thread = new InterruptThread(threadName, latest);
        latest = thread;
        current = thread;
        thread.start();
    }

    /**
     * Asks the thread to finish after the interrupt it is delivering, if any.
     *
     * @return the thread to join, or null if none was running
     */
    synchronized Thread stop() {
        InterruptThread thread = current;
        current = null;
        if (thread != null) {
            thread.stopRequested = true;
            LockSupport.unpark(thread);
        }
        return thread;
    }

    /** Whether the calling thread is some VM's interrupt thread (where joining could deadlock). */
    static boolean inInterruptContext() {
        return Thread.currentThread() instanceof InterruptThread;
    }

    /** Joins a stopped thread, unless the caller is an interrupt thread: then it ends on its own. */
    static void awaitEnd(Thread thread) {
        if (thread == null || inInterruptContext()) {
            return;
        }
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

    private final class InterruptThread extends Thread {
        /** Cleared once joined, so that a VM restarted many times holds no chain of dead threads. */
        private Thread predecessor;
        volatile boolean stopRequested;

        InterruptThread(String name, Thread predecessor) {
            super(name);
            this.predecessor = predecessor;
            setDaemon(true);
        }

        @Override
        public void run() {
            if (predecessor != null) {
                // One handler at a time: the old thread may still be in a handler that restarted
                // its own VM. Joining is safe here: this thread holds no lock.
                joinQuietly(predecessor);
                predecessor = null;
            }
            while (!stopRequested) {
                Link link = ready.poll();
                if (link == null) {
                    LockSupport.park(this);
                    continue;
                }
                int causes = link.takePending();
                vm.deliver(link, causes);
            }
        }

        private static void joinQuietly(Thread thread) {
            while (true) {
                try {
                    thread.join();
                    return;
                } catch (InterruptedException e) {
                    // Keep waiting: nothing interrupts an interrupt thread on purpose.
                }
            }
        }
    }
}
