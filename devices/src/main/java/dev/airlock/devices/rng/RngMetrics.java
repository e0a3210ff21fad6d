package dev.airlock.devices.rng;

import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;

/**
 * Counters of one entropy device or driver: requests completed, bytes delivered, protocol faults,
 * and the rate at which bytes were produced. Thread-safe; every figure may be read at any time.
 */
public final class RngMetrics {
    private static final double NS_PER_SECOND = 1e9;

    private final LongAdder requests = new LongAdder();
    private final LongAdder bytes = new LongAdder();
    private final LongAdder faults = new LongAdder();
    private final LongAdder reattaches = new LongAdder();
    private final LongAdder generatedBytes = new LongAdder();
    private final LongAdder generationNs = new LongAdder();
    private final AtomicLong firstRequestNs = new AtomicLong(Long.MIN_VALUE);
    private volatile long lastRequestNs;

    /** Creates zeroed counters. */
    public RngMetrics() {
    }

    /**
     * Counts one completed request.
     *
     * @param lengthBytes bytes delivered
     * @param startNs     {@link System#nanoTime()} when work on it began
     * @param endNs       {@link System#nanoTime()} when it completed
     */
    void recordRequest(long lengthBytes, long startNs, long endNs) {
        firstRequestNs.compareAndSet(Long.MIN_VALUE, startNs);
        requests.increment();
        bytes.add(lengthBytes);
        lastRequestNs = endNs;
    }

    /**
     * Counts bytes drawn from the source.
     *
     * @param lengthBytes bytes generated
     * @param elapsedNs   time the source took
     */
    void recordGeneration(long lengthBytes, long elapsedNs) {
        generatedBytes.add(lengthBytes);
        generationNs.add(elapsedNs);
    }

    /** Counts a protocol fault. */
    void recordFault() {
        faults.increment();
    }

    /** Counts a re-initialisation of the device after its backend came back. */
    void recordReattach() {
        reattaches.increment();
    }

    /**
     * Requests completed.
     *
     * @return the count
     */
    public long requests() {
        return requests.sum();
    }

    /**
     * Random bytes delivered.
     *
     * @return the count
     */
    public long bytes() {
        return bytes.sum();
    }

    /**
     * Protocol violations seen (each set DEVICE_NEEDS_RESET, or broke the driver).
     *
     * @return the count
     */
    public long faults() {
        return faults.sum();
    }

    /**
     * Times the driver re-initialised the device after a new backend attached; 0 for a device.
     *
     * @return the count
     */
    public long reattaches() {
        return reattaches.sum();
    }

    /**
     * The delivery rate over wall-clock time, from the start of the first request to the end of the
     * latest: what the peer actually drew.
     *
     * @return bytes per second, 0 before any request
     */
    public double bytesPerSecond() {
        long first = firstRequestNs.get();
        long elapsed = lastRequestNs - first;
        return first == Long.MIN_VALUE || elapsed <= 0 ? 0 : bytes.sum() * NS_PER_SECOND / elapsed;
    }

    /**
     * Bytes drawn from the source (the device keeps a bounded buffer ahead of requests); 0 for a driver.
     *
     * @return the count
     */
    public long generatedBytes() {
        return generatedBytes.sum();
    }

    /**
     * The source's production rate: bytes generated over the time the source took (what it could
     * sustain if the peer asked without pause).
     *
     * @return bytes per second, 0 before anything was generated
     */
    public double sourceBytesPerSecond() {
        long busy = generationNs.sum();
        return busy <= 0 ? 0 : generatedBytes.sum() * NS_PER_SECOND / busy;
    }

    @Override
    public String toString() {
        return String.format("%d requests, %d bytes, %d faults, %.1f MB/s delivered, source %.1f MB/s", requests(), bytes(),
                faults(), bytesPerSecond() / 1e6, sourceBytesPerSecond() / 1e6);
    }
}
