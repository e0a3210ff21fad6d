package dev.airlock.virtio;

import java.util.StringJoiner;

/**
 * The bits of the device status field (VIRTIO 1.2 §2.1). The driver sets them, in order, while it
 * initializes the device (§3.1.1); the device sets {@link #DEVICE_NEEDS_RESET}; writing 0 resets
 * the device.
 */
public final class DeviceStatus {
    /** The guest OS has found the device and recognised it as a valid virtio device. */
    public static final int ACKNOWLEDGE = 1;
    /** The guest OS knows how to drive the device. */
    public static final int DRIVER = 2;
    /** The driver is set up and ready to drive the device. */
    public static final int DRIVER_OK = 4;
    /** The driver has acknowledged the features it understands; feature negotiation is complete. */
    public static final int FEATURES_OK = 8;
    /** The device has hit an error from which it cannot recover without a reset. */
    public static final int DEVICE_NEEDS_RESET = 64;
    /** Something went wrong in the guest, and it has given up on the device. */
    public static final int FAILED = 128;
    /** The bits a driver may set. */
    public static final int DRIVER_BITS = ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK | FAILED;

    private DeviceStatus() {
    }

    /**
     * Names the bits of a status value, for messages: {@code "ACKNOWLEDGE|DRIVER"}.
     *
     * @param status the status byte
     * @return the names, unknown bits in hexadecimal
     */
    public static String describe(int status) {
        StringJoiner joiner = new StringJoiner("|");
        joiner.setEmptyValue("RESET");
        String[] names = {"ACKNOWLEDGE", "DRIVER", "DRIVER_OK", "FEATURES_OK", null, null, "DEVICE_NEEDS_RESET", "FAILED"};
        for (int b = 0; b < 32; b++) {
            if ((status & (1 << b)) != 0) {
                joiner.add(b < names.length && names[b] != null ? names[b] : "0x" + Integer.toHexString(1 << b));
            }
        }
        return joiner.toString();
    }
}
