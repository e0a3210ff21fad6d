package dev.airlock.devices.blk;

import dev.airlock.transport.DoorbellFlagsLayout;

/**
 * How a {@link BlockDevice} drives its device. Start from {@link #of(long, long)} and adjust with the
 * {@code with...} methods.
 *
 * <p>The <b>I/O area</b> is a range of the driver VM's private RAM that the block device owns for as
 * long as it is open: the staging area through which the {@code byte[]} and
 * {@link java.lang.foreign.MemorySegment} methods copy, at least 4 KiB. Besides it, the block
 * device takes {@link #CONTROL_SLOT_BYTES} of the frontend's bounce pool per request of the queue
 * depth, for the requests' headers and statuses.
 *
 * @param ioAreaGpa       where the I/O area starts in the driver's private RAM
 * @param ioAreaBytes     its length
 * @param queueDepth      the most requests in flight over all queues (more wait in Java), 1 to 4096
 * @param queueSize       the size wanted for each virtqueue (capped at the device's maximum), at least 4
 * @param maxQueues       the most queues to use when the device offers MQ, 1 to 7
 * @param maxRequestBytes the most data bytes per virtio request (larger calls are split), a multiple
 *                        of 512, at least 512
 * @param failurePolicy   what to do when the device needs a reset or its transport breaks
 * @param maxRecoveries   with {@link FailurePolicy#RECOVER}, how many recoveries in a row (without a
 *                        request completing in between) before giving up and failing
 */
public record BlockDeviceOptions(long ioAreaGpa, long ioAreaBytes, int queueDepth, int queueSize, int maxQueues,
                                 int maxRequestBytes, FailurePolicy failurePolicy, int maxRecoveries) {
    /** Bytes of the bounce pool (shared region) per request of the queue depth: header, status, discard segment, id. */
    public static final int CONTROL_SLOT_BYTES = 64;
    /** The least staging area. */
    public static final int MIN_STAGING_BYTES = 4096;

    /** What the block device does with requests in flight when the device fails. */
    public enum FailurePolicy {
        /** Fail every pending request with {@link BlkDeviceFailedException}; later requests fail until {@link BlockDevice#recover()}. */
        FAIL,
        /**
         * Keep every pending request (and queue new ones) until {@link BlockDevice#recover()}
         * resubmits them or {@link BlockDevice#close()} fails them. A broken transport (the device's
         * VM is gone) fails them at once under every policy: no reset can reach the device.
         */
        HOLD,
        /** Reset and re-initialise the device at once and resubmit what was in flight; fail as {@link #FAIL} if that does not work. */
        RECOVER
    }

    /**
     * Checks the options.
     *
     * @throws IllegalArgumentException if one is out of range
     */
    public BlockDeviceOptions {
        if (queueDepth < 1 || queueDepth > 4096) {
            throw new IllegalArgumentException("queueDepth must be 1 to 4096: " + queueDepth);
        }
        if (queueSize < 4) {
            throw new IllegalArgumentException("queueSize must be at least 4: " + queueSize);
        }
        if (maxQueues < 1 || maxQueues > DoorbellFlagsLayout.MAX_QUEUES) {
            throw new IllegalArgumentException("maxQueues must be 1 to " + DoorbellFlagsLayout.MAX_QUEUES + ": " + maxQueues);
        }
        if (maxRequestBytes < BlkRequestLayout.SECTOR_SIZE || maxRequestBytes % BlkRequestLayout.SECTOR_SIZE != 0) {
            throw new IllegalArgumentException("maxRequestBytes must be a positive multiple of 512: " + maxRequestBytes);
        }
        if (failurePolicy == null) {
            throw new IllegalArgumentException("failurePolicy is null");
        }
        if (maxRecoveries < 0) {
            throw new IllegalArgumentException("maxRecoveries must not be negative: " + maxRecoveries);
        }
        if (ioAreaBytes < MIN_STAGING_BYTES || ioAreaGpa < 0 || ioAreaGpa % 64 != 0) {
            throw new IllegalArgumentException("the I/O area must start 64-byte aligned and hold at least " + MIN_STAGING_BYTES
                    + " bytes: 0x" + Long.toHexString(ioAreaGpa) + " + " + ioAreaBytes);
        }
    }

    /**
     * The defaults over an I/O area: queue depth 64, queues of 256, up to 4 queues, 1 MiB per
     * request, {@link FailurePolicy#RECOVER} up to 3 times in a row.
     *
     * @param ioAreaGpa   where the I/O area starts (64-byte aligned)
     * @param ioAreaBytes its length, at least 4096
     * @return the options
     */
    public static BlockDeviceOptions of(long ioAreaGpa, long ioAreaBytes) {
        return new BlockDeviceOptions(ioAreaGpa, ioAreaBytes, 64, 256, 4, 1 << 20, FailurePolicy.RECOVER, 3);
    }

    /**
     * With another queue depth.
     *
     * @param value 1 to 4096
     * @return the new options
     */
    public BlockDeviceOptions withQueueDepth(int value) {
        return new BlockDeviceOptions(ioAreaGpa, ioAreaBytes, value, queueSize, maxQueues, maxRequestBytes, failurePolicy, maxRecoveries);
    }

    /**
     * With another virtqueue size.
     *
     * @param value at least 4
     * @return the new options
     */
    public BlockDeviceOptions withQueueSize(int value) {
        return new BlockDeviceOptions(ioAreaGpa, ioAreaBytes, queueDepth, value, maxQueues, maxRequestBytes, failurePolicy, maxRecoveries);
    }

    /**
     * With another cap on the queues used.
     *
     * @param value 1 to 7
     * @return the new options
     */
    public BlockDeviceOptions withMaxQueues(int value) {
        return new BlockDeviceOptions(ioAreaGpa, ioAreaBytes, queueDepth, queueSize, value, maxRequestBytes, failurePolicy, maxRecoveries);
    }

    /**
     * With another cap on the bytes per virtio request.
     *
     * @param value a positive multiple of 512
     * @return the new options
     */
    public BlockDeviceOptions withMaxRequestBytes(int value) {
        return new BlockDeviceOptions(ioAreaGpa, ioAreaBytes, queueDepth, queueSize, maxQueues, value, failurePolicy, maxRecoveries);
    }

    /**
     * With another failure policy.
     *
     * @param policy   the policy
     * @param attempts for {@link FailurePolicy#RECOVER}, recoveries in a row before giving up
     * @return the new options
     */
    public BlockDeviceOptions withFailurePolicy(FailurePolicy policy, int attempts) {
        return new BlockDeviceOptions(ioAreaGpa, ioAreaBytes, queueDepth, queueSize, maxQueues, maxRequestBytes, policy, attempts);
    }

    /**
     * The bytes of staging area: the whole I/O area.
     *
     * @return bytes
     */
    public long stagingBytes() {
        return ioAreaBytes;
    }
}
