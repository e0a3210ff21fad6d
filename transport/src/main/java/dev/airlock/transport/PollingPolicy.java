package dev.airlock.transport;

import java.time.Duration;
import java.util.Objects;

/**
 * How the poller of a device in {@link NotificationMode#POLLING} waits when there is no work.
 *
 * <p>The policy: while any queue had new work within the last {@code spinIdle}, the poller spins
 * ({@link Thread#onSpinWait()} between passes over the queues), so a request is seen within one
 * pass. After {@code spinIdle} without work it parks between passes, first for {@code minPark},
 * doubling each idle pass up to {@code maxPark}; the first pass that finds work returns it to
 * spinning. An idle polled device therefore costs at most one pass per {@code maxPark} (by default
 * a thousand short passes a second), and the first request after an idle period waits at most
 * {@code maxPark} plus the OS's timer slack (about 50 µs on Linux) before it is seen. A doorbell
 * that the driver rings anyway (it may: suppression is a hint) wakes the poller at once.
 *
 * @param spinIdle how long the poller keeps spinning after the last work; zero parks at once
 * @param minPark  the first park, positive
 * @param maxPark  the longest park, at least {@code minPark}
 */
public record PollingPolicy(Duration spinIdle, Duration minPark, Duration maxPark) {
    /** Spin for 100 µs after the last work, then park from 1 µs up to 1 ms. */
    public static final PollingPolicy DEFAULT = new PollingPolicy(Duration.ofNanos(100_000), Duration.ofNanos(1_000),
            Duration.ofMillis(1));

    /**
     * Checks the policy.
     *
     * @throws IllegalArgumentException if {@code spinIdle} is negative, {@code minPark} not positive,
     *                                  {@code maxPark} below {@code minPark}, or any above a minute
     */
    public PollingPolicy {
        Objects.requireNonNull(spinIdle, "spinIdle");
        Objects.requireNonNull(minPark, "minPark");
        Objects.requireNonNull(maxPark, "maxPark");
        Duration limit = Duration.ofMinutes(1);
        if (spinIdle.isNegative() || minPark.isNegative() || minPark.isZero() || maxPark.compareTo(minPark) < 0
                || spinIdle.compareTo(limit) > 0 || maxPark.compareTo(limit) > 0) {
            throw new IllegalArgumentException("polling policy needs 0 <= spinIdle <= 1 min and 0 < minPark <= maxPark <= 1 min: " + spinIdle
                    + ", " + minPark + ", " + maxPark);
        }
    }

    long spinIdleNs() {
        return spinIdle.toNanos();
    }

    long minParkNs() {
        return minPark.toNanos();
    }

    long maxParkNs() {
        return maxPark.toNanos();
    }
}
