package dev.airlock.vhostuser;

import java.util.concurrent.atomic.AtomicLong;

/** Warnings caused by the front-end or the guest: at most ten lines a second, then a count of what was dropped. */
final class VhostUserLog {
    private static final System.Logger LOGGER = System.getLogger("dev.airlock.vhostuser");
    private static final int LINES_PER_SECOND = 10;
    private static final AtomicLong WINDOW_START_NS = new AtomicLong(System.nanoTime());
    private static final AtomicLong LINES = new AtomicLong();
    private static final AtomicLong SUPPRESSED = new AtomicLong();

    private VhostUserLog() {
    }

    static void warn(String message) {
        long now = System.nanoTime();
        long start = WINDOW_START_NS.get();
        if (now - start > 1_000_000_000L && WINDOW_START_NS.compareAndSet(start, now)) {
            LINES.set(0);
            long dropped = SUPPRESSED.getAndSet(0);
            if (dropped > 0) {
                LOGGER.log(System.Logger.Level.WARNING, dropped + " similar messages suppressed");
            }
        }
        if (LINES.incrementAndGet() <= LINES_PER_SECOND) {
            LOGGER.log(System.Logger.Level.WARNING, message);
        } else {
            SUPPRESSED.incrementAndGet();
        }
    }
}
