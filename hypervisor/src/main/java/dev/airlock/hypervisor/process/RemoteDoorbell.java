package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.InterruptCause;
import dev.airlock.hypervisor.VmId;
import dev.airlock.memory.SharedMemory;
import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.NativeCallException;

/**
 * This VM's side of the doorbells with one peer: the pair's doorbell page ({@link DoorbellPageLayout})
 * mapped here, the eventfd this VM writes to interrupt the peer, and the eventfd a waiter thread
 * ({@code airlock-vm-NAME-db-PEER}) blocks on, raising {@link InterruptCause#DOORBELL} into this
 * VM's interrupt thread. Operations never block; after {@link #close()} they return false.
 */
final class RemoteDoorbell {
    private static final System.Logger LOG = System.getLogger(RemoteDoorbell.class.getName());

    private final VmId peer;
    private final SharedMemory page;
    private final int inboundEventFd;
    private final int outboundEventFd;
    private final long inbound;
    private final long outbound;
    private final InterruptDispatcher dispatcher;
    private final Thread waiter;
    /** Guarded by {@code this}. */
    private boolean closed;

    RemoteDoorbell(String vmName, VmId peer, boolean primary, int pageFd, int inboundEventFd, int outboundEventFd,
                   InterruptDispatcher dispatcher) {
        this.peer = peer;
        this.page = SharedMemory.map("doorbell-" + peer.value(), pageFd, DoorbellPageLayout.PAGE_LENGTH, true);
        this.inboundEventFd = inboundEventFd;
        this.outboundEventFd = outboundEventFd;
        this.inbound = primary ? DoorbellPageLayout.TO_PRIMARY_OFFSET : DoorbellPageLayout.TO_SECONDARY_OFFSET;
        this.outbound = primary ? DoorbellPageLayout.TO_SECONDARY_OFFSET : DoorbellPageLayout.TO_PRIMARY_OFFSET;
        this.dispatcher = dispatcher;
        // This side starts unmasked, as every doorbell does: a backend replacing a dead one must not
        // inherit its mask. Flags already pending (rung before this process held the doorbell) made
        // no eventfd write if the word was non-zero, so they are raised here.
        DoorbellPageLayout.setMasked(page.segment(), inbound, false);
        if (DoorbellPageLayout.pending(page.segment(), inbound) != 0) {
            dispatcher.raise(peer, InterruptCause.DOORBELL);
        }
        this.waiter = new Thread(this::waitLoop, "airlock-vm-" + vmName + "-db-" + peer.value());
        waiter.setDaemon(true);
        waiter.start();
    }

    private void waitLoop() {
        while (true) {
            try {
                Linux.eventfdRead(inboundEventFd);
            } catch (NativeCallException e) {
                LOG.log(System.Logger.Level.ERROR, "doorbell eventfd from " + peer + " failed: " + e.getMessage());
                return;
            }
            synchronized (this) {
                if (closed) {
                    return;
                }
            }
            dispatcher.raise(peer, InterruptCause.DOORBELL);
        }
    }

    synchronized boolean ring(long flags) {
        if (closed) {
            return false;
        }
        long previous = DoorbellPageLayout.ring(page.segment(), outbound, flags);
        if (previous == 0 && !DoorbellPageLayout.masked(page.segment(), outbound)) {
            Linux.eventfdWrite(outboundEventFd, 1);
        }
        return true;
    }

    /** The flags read and cleared, or empty once closed. */
    synchronized java.util.OptionalLong readAndClear() {
        if (closed) {
            return java.util.OptionalLong.empty();
        }
        return java.util.OptionalLong.of(DoorbellPageLayout.readAndClear(page.segment(), inbound));
    }

    synchronized boolean mask() {
        if (closed) {
            return false;
        }
        DoorbellPageLayout.setMasked(page.segment(), inbound, true);
        return true;
    }

    synchronized boolean unmask() {
        if (closed) {
            return false;
        }
        DoorbellPageLayout.setMasked(page.segment(), inbound, false);
        if (DoorbellPageLayout.pending(page.segment(), inbound) != 0) {
            dispatcher.raise(peer, InterruptCause.DOORBELL);
        }
        return true;
    }

    /** Stops the waiter, unmaps the page and closes both eventfds. Idempotent. */
    void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            Linux.eventfdWrite(inboundEventFd, 1); // wakes the waiter, which sees closed
        }
        if (Thread.currentThread() != waiter) {
            try {
                waiter.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        page.close();
        Linux.close(inboundEventFd);
        Linux.close(outboundEventFd);
    }
}
