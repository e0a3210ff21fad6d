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

    void releaseDoorbells() {
        if (doorbellPage != null) {
            doorbellPage.release();
            eventToPrimary.release();
            eventToSecondary.release();
        }
    }
}
