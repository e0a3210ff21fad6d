package dev.airlock.hypervisor.process;

import java.util.ArrayDeque;

/** A primary and one secondary: their queues, doorbells and whether the pair was revoked. */
final class DaemonPair {
    final DaemonVm primary;
    final DaemonVm secondary;
    int depth;
    ArrayDeque<byte[]> toPrimary;
    ArrayDeque<byte[]> toSecondary;
    SharedFd doorbellPage;
    SharedFd eventToPrimary;
    SharedFd eventToSecondary;
    boolean revoked;

    DaemonPair(DaemonVm primary, DaemonVm secondary) {
        this.primary = primary;
        this.secondary = secondary;
    }

    DaemonVm other(DaemonVm self) {
        return self == primary ? secondary : primary;
    }

    ArrayDeque<byte[]> inbound(DaemonVm self) {
        return self == primary ? toPrimary : toSecondary;
    }

    /**
     * Drops every message queued toward the primary's side (requests of a backend session that
     * ended).
     *
     * @return whether the queue was full, so the secondary is owed {@code QUEUE_NOT_FULL}
     */
    boolean dropToPrimary() {
        if (toPrimary == null || toPrimary.isEmpty()) {
            return false;
        }
        boolean wasFull = toPrimary.size() >= depth;
        toPrimary.clear();
        return wasFull;
    }

    void releaseDoorbells() {
        if (doorbellPage != null) {
            doorbellPage.release();
            eventToPrimary.release();
            eventToSecondary.release();
        }
    }
}
