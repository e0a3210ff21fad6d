package dev.airlock.devices.console;

import java.util.concurrent.atomic.LongAdder;

/**
 * Counters of one console device or driver. "Receive" is towards the guest (the receiveq),
 * "transmit" from the guest (the transmitq). Thread-safe; every figure may be read at any time.
 */
public final class ConsoleMetrics {
    private final LongAdder receiveRequests = new LongAdder();
    private final LongAdder receiveBytes = new LongAdder();
    private final LongAdder transmitRequests = new LongAdder();
    private final LongAdder transmitBytes = new LongAdder();
    private final LongAdder emergencyBytes = new LongAdder();
    private final LongAdder emergencyDropped = new LongAdder();
    private final LongAdder outputErrors = new LongAdder();
    private final LongAdder faults = new LongAdder();
    private final LongAdder reattaches = new LongAdder();
    private final LongAdder retransmitRequests = new LongAdder();

    /** Creates zeroed counters. */
    public ConsoleMetrics() {
    }

    void recordReceive(long bytes) {
        receiveRequests.increment();
        receiveBytes.add(bytes);
    }

    void recordTransmit(long bytes) {
        transmitRequests.increment();
        transmitBytes.add(bytes);
    }

    void recordEmergencyWrite(boolean taken) {
        (taken ? emergencyBytes : emergencyDropped).increment();
    }

    void recordOutputError() {
        outputErrors.increment();
    }

    void recordFault() {
        faults.increment();
    }

    void recordReattach(int retransmitted) {
        reattaches.increment();
        retransmitRequests.add(retransmitted);
    }

    /**
     * Receive buffers completed (each carries input to the guest).
     *
     * @return the count
     */
    public long receiveRequests() {
        return receiveRequests.sum();
    }

    /**
     * Bytes delivered to the guest.
     *
     * @return the count
     */
    public long receiveBytes() {
        return receiveBytes.sum();
    }

    /**
     * Transmit buffers completed.
     *
     * @return the count
     */
    public long transmitRequests() {
        return transmitRequests.sum();
    }

    /**
     * Bytes the guest sent.
     *
     * @return the count
     */
    public long transmitBytes() {
        return transmitBytes.sum();
    }

    /**
     * Bytes the guest wrote through {@code emerg_wr} and the device passed on.
     *
     * @return the count
     */
    public long emergencyBytes() {
        return emergencyBytes.sum();
    }

    /**
     * Bytes written through {@code emerg_wr} while the output buffer was full, and dropped (a
     * configuration write cannot wait).
     *
     * @return the count
     */
    public long emergencyDropped() {
        return emergencyDropped.sum();
    }

    /**
     * Writes to the endpoint that failed (their bytes are lost).
     *
     * @return the count
     */
    public long outputErrors() {
        return outputErrors.sum();
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
     * Transmit buffers the driver gave again to a device that came back, because the one that went
     * away had not acknowledged them (their bytes may have been written twice); 0 for a device.
     *
     * @return the count
     */
    public long retransmitRequests() {
        return retransmitRequests.sum();
    }

    @Override
    public String toString() {
        return "receive " + receiveRequests() + " requests / " + receiveBytes() + " B, transmit " + transmitRequests()
                + " requests / " + transmitBytes() + " B, emergency " + emergencyBytes() + " B (" + emergencyDropped()
                + " dropped), " + outputErrors() + " output errors, " + faults() + " faults";
    }
}
