package dev.airlock.virtio;

import java.util.StringJoiner;

/**
 * Feature bits (VIRTIO 1.2 §2.2 and §6). Bits 0 to 23 and 50 to 127 are device-type specific, 24
 * to 41 are reserved for queue and negotiation extensions, the rest for future use. This model
 * carries features as a {@code long}: bits 0 to 63, which hold every bit the spec defines.
 * Transports exchange them as 32-bit words selected by a select register.
 */
public final class VirtioFeatures {
    /** Legacy: notify when the avail ring is empty even if suppressed (not offered by 1.x devices). */
    public static final int VIRTIO_F_NOTIFY_ON_EMPTY = 24;
    /** Legacy: any message framing (implied by VERSION_1). */
    public static final int VIRTIO_F_ANY_LAYOUT = 27;
    /** The driver may use descriptors with {@code VIRTQ_DESC_F_INDIRECT} (§2.7.5.3). */
    public static final int VIRTIO_F_INDIRECT_DESC = 28;
    /** The {@code used_event} and {@code avail_event} fields are in use (§2.7.7, §2.7.10). */
    public static final int VIRTIO_F_EVENT_IDX = 29;
    /** Compliance with VIRTIO 1.x (required by this implementation). */
    public static final int VIRTIO_F_VERSION_1 = 32;
    /** The device reaches memory through a platform translation (an IOMMU, a bounce pool). */
    public static final int VIRTIO_F_ACCESS_PLATFORM = 33;
    /** Packed virtqueue layout (§2.8; not implemented here). */
    public static final int VIRTIO_F_RING_PACKED = 34;
    /** Buffers are used in the order they were made available. */
    public static final int VIRTIO_F_IN_ORDER = 35;
    /** Memory accesses need platform (not just SMP) ordering. */
    public static final int VIRTIO_F_ORDER_PLATFORM = 36;
    /** Single root I/O virtualization. */
    public static final int VIRTIO_F_SR_IOV = 37;
    /** Available buffer notifications carry extra data. */
    public static final int VIRTIO_F_NOTIFICATION_DATA = 38;
    /** Notification data is supplied by the device (with NOTIFICATION_DATA). */
    public static final int VIRTIO_F_NOTIF_CONFIG_DATA = 39;
    /** Individual queues can be reset. */
    public static final int VIRTIO_F_RING_RESET = 40;
    /** The device has an administration virtqueue (VIRTIO 1.3). */
    public static final int VIRTIO_F_ADMIN_VQ = 41;

    private static final String[] NAMES = new String[64];

    static {
        NAMES[VIRTIO_F_NOTIFY_ON_EMPTY] = "NOTIFY_ON_EMPTY";
        NAMES[VIRTIO_F_ANY_LAYOUT] = "ANY_LAYOUT";
        NAMES[VIRTIO_F_INDIRECT_DESC] = "INDIRECT_DESC";
        NAMES[VIRTIO_F_EVENT_IDX] = "EVENT_IDX";
        NAMES[VIRTIO_F_VERSION_1] = "VERSION_1";
        NAMES[VIRTIO_F_ACCESS_PLATFORM] = "ACCESS_PLATFORM";
        NAMES[VIRTIO_F_RING_PACKED] = "RING_PACKED";
        NAMES[VIRTIO_F_IN_ORDER] = "IN_ORDER";
        NAMES[VIRTIO_F_ORDER_PLATFORM] = "ORDER_PLATFORM";
        NAMES[VIRTIO_F_SR_IOV] = "SR_IOV";
        NAMES[VIRTIO_F_NOTIFICATION_DATA] = "NOTIFICATION_DATA";
        NAMES[VIRTIO_F_NOTIF_CONFIG_DATA] = "NOTIF_CONFIG_DATA";
        NAMES[VIRTIO_F_RING_RESET] = "RING_RESET";
        NAMES[VIRTIO_F_ADMIN_VQ] = "ADMIN_VQ";
    }

    private VirtioFeatures() {
    }

    /**
     * The mask of one feature bit.
     *
     * @param feature the bit number, 0 to 63
     * @return {@code 1L << feature}
     * @throws IllegalArgumentException if the bit is outside 0 to 63
     */
    public static long bit(int feature) {
        if (feature < 0 || feature > 63) {
            throw new IllegalArgumentException("feature bit out of range 0..63: " + feature);
        }
        return 1L << feature;
    }

    /**
     * A set of features.
     *
     * @param features bit numbers
     * @return the mask with each bit set
     */
    public static long of(int... features) {
        long mask = 0;
        for (int f : features) {
            mask |= bit(f);
        }
        return mask;
    }

    /**
     * Whether a feature is in a set.
     *
     * @param features the set
     * @param feature  the bit number
     * @return whether it is set
     */
    public static boolean has(long features, int feature) {
        return (features & bit(feature)) != 0;
    }

    /**
     * A set with one more feature.
     *
     * @param features the set
     * @param feature  the bit number
     * @return {@code features} with the bit set
     */
    public static long with(long features, int feature) {
        return features | bit(feature);
    }

    /**
     * A set with one feature fewer.
     *
     * @param features the set
     * @param feature  the bit number
     * @return {@code features} with the bit clear
     */
    public static long without(long features, int feature) {
        return features & ~bit(feature);
    }

    /**
     * The 32-bit word a transport shows for a feature select value: select 0 gives bits 0 to 31,
     * select 1 bits 32 to 63, and every other select 0 (no feature defined there).
     *
     * @param features the set
     * @param select   the select value, treated as unsigned
     * @return the word
     */
    public static int word(long features, int select) {
        return switch (select) {
            case 0 -> (int) features;
            case 1 -> (int) (features >>> 32);
            default -> 0;
        };
    }

    /**
     * Replaces the word for a select value (0 or 1).
     *
     * @param features the set
     * @param select   0 or 1
     * @param value    the new word
     * @return the updated set
     * @throws IllegalArgumentException for any other select
     */
    public static long withWord(long features, int select, int value) {
        return switch (select) {
            case 0 -> (features & 0xffff_ffff_0000_0000L) | Integer.toUnsignedLong(value);
            case 1 -> (features & 0x0000_0000_ffff_ffffL) | ((long) value << 32);
            default -> throw new IllegalArgumentException("feature select must be 0 or 1: " + select);
        };
    }

    /**
     * Names the bits of a set, for messages: {@code "VERSION_1|EVENT_IDX|3"}.
     *
     * @param features the set
     * @return the names, device-specific bits by number
     */
    public static String describe(long features) {
        StringJoiner joiner = new StringJoiner("|", "", "");
        joiner.setEmptyValue("none");
        for (int b = 0; b < 64; b++) {
            if ((features & (1L << b)) != 0) {
                joiner.add(NAMES[b] != null ? NAMES[b] : Integer.toString(b));
            }
        }
        return joiner.toString();
    }
}
