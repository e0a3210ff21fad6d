package dev.airlock.virtio;

import java.util.Objects;

import static dev.airlock.virtio.DeviceStatus.ACKNOWLEDGE;
import static dev.airlock.virtio.DeviceStatus.DEVICE_NEEDS_RESET;
import static dev.airlock.virtio.DeviceStatus.DRIVER;
import static dev.airlock.virtio.DeviceStatus.DRIVER_BITS;
import static dev.airlock.virtio.DeviceStatus.DRIVER_OK;
import static dev.airlock.virtio.DeviceStatus.FAILED;
import static dev.airlock.virtio.DeviceStatus.FEATURES_OK;

/**
 * The device side of the device status field and feature negotiation (VIRTIO 1.2 §2.1, §2.2,
 * §3.1.1), independent of any transport: msgq-mmio, shmem-doorbell and vhost-user feed it the
 * driver's writes and show it the driver's reads.
 *
 * <p>Rules enforced:
 * <ul>
 * <li>Writing 0 resets: status, driver features and negotiated features are cleared and
 *     {@link Listener#onReset()} runs (the owner drops its queues there).</li>
 * <li>Otherwise the driver may only add bits, never clear them. {@link DeviceStatus#DRIVER} needs
 *     {@link DeviceStatus#ACKNOWLEDGE}, {@link DeviceStatus#FEATURES_OK} needs DRIVER,
 *     {@link DeviceStatus#DRIVER_OK} needs FEATURES_OK (each in the resulting value, so in-order
 *     bits may arrive in one write). {@link DeviceStatus#FAILED} may be added at any time; after it
 *     only a reset is accepted.</li>
 * <li>Driver features may be written only while DRIVER is set and FEATURES_OK is not.</li>
 * <li>When the driver adds FEATURES_OK the device checks the driver's features: a subset of the
 *     device's, {@link VirtioFeatures#VIRTIO_F_VERSION_1} present, and accepted by
 *     {@link Listener#acceptFeatures(long)}. If not, FEATURES_OK (and DRIVER_OK, if in the same
 *     write) does not stick; the driver sees that when it re-reads the status (§3.1.1 step 6).</li>
 * <li>{@link DeviceStatus#DEVICE_NEEDS_RESET} belongs to the device ({@link #setNeedsReset}); the
 *     driver's copy of that bit in a write is ignored. Reserved bits must be zero.</li>
 * </ul>
 * An illegal write leaves the state unchanged, is recorded as a {@link VirtioFault}
 * ({@link #lastFault()}) and reported by the returned {@link WriteResult}; nothing is thrown at the
 * transport.
 *
 * <p>Thread-safe: every mutator is synchronized, and {@link #status()} is a volatile read.
 * Listener methods run with the lock held, on the thread that made the write, so a reset finishes
 * before the next write is looked at.
 */
public final class DeviceStatusMachine {
    /** What the owner of the device wants to hear about. All methods have empty defaults. */
    public interface Listener {
        /**
         * Device-specific check of the driver's features when it sets FEATURES_OK (for example a
         * feature that needs another). Only subsets of the offered features reach it.
         *
         * @param driverFeatures the features the driver wrote
         * @return whether the device accepts the set
         */
        default boolean acceptFeatures(long driverFeatures) {
            return true;
        }

        /**
         * The driver set DRIVER_OK: the device may now consume buffers (§2.1.2).
         *
         * @param negotiatedFeatures the features in force
         */
        default void onDriverOk(long negotiatedFeatures) {
        }

        /** The driver wrote 0: drop every queue and return to the initial state (§2.4). */
        default void onReset() {
        }
    }

    /** The outcome of a status write. */
    public enum WriteResult {
        /** The new status is in force. */
        ACCEPTED,
        /** The write was 0 and the device was reset. */
        RESET,
        /** The write added FEATURES_OK, but the driver's features were refused: it did not stick. */
        FEATURES_NOT_ACCEPTED,
        /** The write broke an ordering rule; the status is unchanged (see {@link #lastFault()}). */
        REJECTED
    }

    private static final Listener NO_LISTENER = new Listener() {
    };

    private final String name;
    private final long deviceFeatures;
    private final Listener listener;

    private volatile int status;
    private long driverFeatures;
    /** Whether the driver wrote a non-zero feature word above bit 63 (never offered). */
    private boolean driverFeaturesBeyond64;
    private long negotiatedFeatures;
    private VirtioFault lastFault;

    /**
     * Creates the machine in the reset state.
     *
     * @param name           the device, for fault records
     * @param deviceFeatures the features the device offers; must include VERSION_1
     * @param listener       the owner's callbacks, or null for none
     * @throws IllegalArgumentException if VERSION_1 is not offered
     */
    public DeviceStatusMachine(String name, long deviceFeatures, Listener listener) {
        this.name = Objects.requireNonNull(name, "name");
        if (!VirtioFeatures.has(deviceFeatures, VirtioFeatures.VIRTIO_F_VERSION_1)) {
            throw new IllegalArgumentException("device '" + name + "' must offer VIRTIO_F_VERSION_1: "
                    + VirtioFeatures.describe(deviceFeatures));
        }
        this.deviceFeatures = deviceFeatures;
        this.listener = listener != null ? listener : NO_LISTENER;
    }

    /**
     * The status byte the driver reads.
     *
     * @return the current status
     */
    public int status() {
        return status;
    }

    /**
     * The features the device offers.
     *
     * @return the device features
     */
    public long deviceFeatures() {
        return deviceFeatures;
    }

    /**
     * The device feature word for a select value (what DeviceFeatures shows after
     * DeviceFeaturesSel is written).
     *
     * @param select the select value
     * @return the 32 bits, 0 for a select above 1
     */
    public int deviceFeaturesWord(int select) {
        return VirtioFeatures.word(deviceFeatures, select);
    }

    /**
     * The features the driver has written since the last reset.
     *
     * @return the driver features
     */
    public synchronized long driverFeatures() {
        return driverFeatures;
    }

    /**
     * The features in force: the driver's, once FEATURES_OK stuck; 0 before.
     *
     * @return the negotiated features
     */
    public synchronized long negotiatedFeatures() {
        return negotiatedFeatures;
    }

    /**
     * The most recent rejected write or device-reported error, kept until reset.
     *
     * @return the fault, or null
     */
    public synchronized VirtioFault lastFault() {
        return lastFault;
    }

    /**
     * Whether DRIVER_OK is set: the device may process queues.
     *
     * @return whether the driver is live
     */
    public boolean isDriverOk() {
        return (status & DRIVER_OK) != 0;
    }

    /**
     * The driver writes all 64 feature bits.
     *
     * @param features the features it accepts
     * @return true if stored; false (and a fault recorded) outside the DRIVER .. FEATURES_OK window
     */
    public synchronized boolean writeDriverFeatures(long features) {
        if (!featureWindowOpen(features)) {
            return false;
        }
        driverFeatures = features;
        return true;
    }

    /**
     * The driver writes one 32-bit feature word (DriverFeatures after DriverFeaturesSel).
     *
     * @param select the select value; words above 1 hold no defined feature, so a non-zero value
     *               there makes FEATURES_OK fail
     * @param value  the word
     * @return true if stored; false (and a fault recorded) outside the DRIVER .. FEATURES_OK window
     */
    public synchronized boolean writeDriverFeaturesWord(int select, int value) {
        if (!featureWindowOpen(Integer.toUnsignedLong(value))) {
            return false;
        }
        if (select == 0 || select == 1) {
            driverFeatures = VirtioFeatures.withWord(driverFeatures, select, value);
        } else if (value != 0) {
            driverFeaturesBeyond64 = true;
        }
        return true;
    }

    private boolean featureWindowOpen(long value) {
        int s = status;
        if ((s & DRIVER) == 0 || (s & (FEATURES_OK | FAILED)) != 0) {
            lastFault = new VirtioFault(name, "driver_features", value,
                    "written while status is " + DeviceStatus.describe(s) + "; allowed only after DRIVER and before FEATURES_OK");
            return false;
        }
        return true;
    }

    /**
     * The driver writes the status field.
     *
     * @param value the byte written
     * @return what happened
     */
    public synchronized WriteResult writeStatus(int value) {
        if (value == 0) {
            reset();
            return WriteResult.RESET;
        }
        int current = status & DRIVER_BITS;
        int written = value & DRIVER_BITS;
        String violation = checkTransition(value, current, written);
        if (violation != null) {
            lastFault = new VirtioFault(name, "status", Integer.toUnsignedLong(value),
                    violation + " (status is " + DeviceStatus.describe(status) + ")");
            return WriteResult.REJECTED;
        }
        int added = written & ~current;
        if ((added & FEATURES_OK) != 0) {
            String refusal = checkFeatures();
            if (refusal != null) {
                lastFault = new VirtioFault(name, "driver_features", driverFeatures, refusal);
                status = (status & DEVICE_NEEDS_RESET) | (written & ~(FEATURES_OK | DRIVER_OK));
                return WriteResult.FEATURES_NOT_ACCEPTED;
            }
            negotiatedFeatures = driverFeatures;
        }
        status = (status & DEVICE_NEEDS_RESET) | written;
        if ((added & DRIVER_OK) != 0) {
            listener.onDriverOk(negotiatedFeatures);
        }
        return WriteResult.ACCEPTED;
    }

    /** Returns why the write is illegal, or null. */
    private static String checkTransition(int value, int current, int written) {
        if ((value & ~(DRIVER_BITS | DEVICE_NEEDS_RESET)) != 0) {
            return "reserved status bits set";
        }
        if ((written & current) != current) {
            return "clears " + DeviceStatus.describe(current & ~written) + "; only a reset (0) clears bits";
        }
        int added = written & ~current;
        if (added == 0) {
            return null;
        }
        if ((current & FAILED) != 0) {
            return "adds " + DeviceStatus.describe(added) + " after FAILED; only a reset is accepted";
        }
        if ((added & DRIVER) != 0 && (written & ACKNOWLEDGE) == 0) {
            return "DRIVER before ACKNOWLEDGE";
        }
        if ((added & FEATURES_OK) != 0 && (written & DRIVER) == 0) {
            return "FEATURES_OK before DRIVER";
        }
        if ((added & DRIVER_OK) != 0 && (written & FEATURES_OK) == 0) {
            return "DRIVER_OK before FEATURES_OK";
        }
        return null;
    }

    /** Returns why the driver's features cannot be accepted, or null. */
    private String checkFeatures() {
        long unoffered = driverFeatures & ~deviceFeatures;
        if (unoffered != 0 || driverFeaturesBeyond64) {
            return "driver accepted features the device did not offer: "
                    + (unoffered != 0 ? VirtioFeatures.describe(unoffered) : "bits above 63");
        }
        if (!VirtioFeatures.has(driverFeatures, VirtioFeatures.VIRTIO_F_VERSION_1)) {
            return "VIRTIO_F_VERSION_1 not accepted (legacy drivers are not supported)";
        }
        if (!listener.acceptFeatures(driverFeatures)) {
            return "device refused the feature combination " + VirtioFeatures.describe(driverFeatures);
        }
        return null;
    }

    /**
     * The device reports an error it cannot recover from without a reset (a guest protocol
     * violation on a queue, say): DEVICE_NEEDS_RESET is set until the driver resets (§2.1.2).
     *
     * @param cause what went wrong, kept as {@link #lastFault()}
     * @return whether DRIVER_OK is set, in which case the transport must send a configuration
     *         change notification (§2.1.2)
     */
    public synchronized boolean setNeedsReset(VirtioFault cause) {
        lastFault = Objects.requireNonNull(cause, "cause");
        status |= DEVICE_NEEDS_RESET;
        return (status & DRIVER_OK) != 0;
    }

    private void reset() {
        status = 0;
        driverFeatures = 0;
        driverFeaturesBeyond64 = false;
        negotiatedFeatures = 0;
        lastFault = null;
        listener.onReset();
    }

    @Override
    public String toString() {
        return "DeviceStatusMachine(" + name + ", " + DeviceStatus.describe(status) + ")";
    }
}
