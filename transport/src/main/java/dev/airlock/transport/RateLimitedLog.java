package dev.airlock.transport;

import java.util.concurrent.atomic.AtomicLong;

/**
 * A log for faults caused by the other side: at most {@link #LINES_PER_SECOND} lines a second, then
 * a count of what was suppressed. Never logs stack traces.
 */
final class RateLimitedLog {
    static final int LINES_PER_SECOND = 10;
    private static final long SECOND_NS = 1_000_000_000L;

    private final System.Logger logger;
    private final AtomicLong windowStartNs = new AtomicLong(System.nanoTime());
    private final AtomicLong linesInWindow = new AtomicLong();
    private final AtomicLong suppressed = new AtomicLong();

    RateLimitedLog(Class<?> owner) {
        this.logger = System.getLogger(owner.getName());
    }

    void warn(String message) {
        long now = System.nanoTime();
        long start = windowStartNs.get();
        if (now - start > SECOND_NS && windowStartNs.compareAndSet(start, now)) {
            linesInWindow.set(0);
            long dropped = suppressed.getAndSet(0);
            if (dropped > 0) {
                logger.log(System.Logger.Level.WARNING, dropped + " similar messages suppressed");
            }
        }
        if (linesInWindow.incrementAndGet() <= LINES_PER_SECOND) {
            logger.log(System.Logger.Level.WARNING, message);
        } else {
            suppressed.incrementAndGet();
        }
    }
}
