package dev.airlock.cli.machine;

import dev.airlock.transport.TransportKind;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * One device of a secondary VM as the command line names it: {@code TYPE[:key=value,...]}, for
 * example {@code blk:image=disk.raw,ro}, {@code console:socket=/tmp/c.sock} or {@code rng}. Keys
 * every type takes: {@code slot} (0 to 7), {@code transport} ({@code msgq-mmio} or
 * {@code shmem-doorbell}) and {@code region} (the shared region's size: rings and bounce pool).
 * These are devices over the hypervisor; a device the VM drives over vhost-user is a
 * {@link VhostUserDeviceSpec}.
 *
 * @param type        the device type
 * @param slot        the device slot in the pair
 * @param transport   the transport, one of {@link TransportKind#hosted()}
 * @param regionBytes the size of the device's shared region
 * @param options     the type's own options (for blk: image, ro, serial, queues; for console:
 *                    stdio, socket, file)
 */
public record DeviceSpec(DeviceType type, int slot, TransportKind transport, long regionBytes, Map<String, String> options) {
    /** Device slots per pair. */
    public static final int MAX_SLOTS = 8;
    private static final String NOT_HOSTED =
            "vhost-user is not a hypervisor transport; use vm run --device blk,vhost-user=SOCKET";

    /** The device types the CLI can serve. */
    public enum DeviceType {
        /** virtio-blk on a raw image. */
        BLK(32L << 20, Set.of("image", "ro", "serial", "queues")),
        /** virtio-console, one port. */
        CONSOLE(1L << 20, Set.of("stdio", "socket", "file")),
        /** virtio-rng from SecureRandom. */
        RNG(1L << 20, Set.of());

        private final long defaultRegionBytes;
        private final Set<String> keys;

        DeviceType(long defaultRegionBytes, Set<String> keys) {
            this.defaultRegionBytes = defaultRegionBytes;
            this.keys = keys;
        }

        /**
         * The type's name on the command line.
         *
         * @return blk, console or rng
         */
        public String cliName() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** Checks the fields. */
    public DeviceSpec {
        if (slot < 0 || slot >= MAX_SLOTS) {
            throw new IllegalArgumentException("device slot " + slot + " out of range 0.." + (MAX_SLOTS - 1));
        }
        if (!transport.isHosted()) {
            throw new IllegalArgumentException(NOT_HOSTED);
        }
        if (regionBytes < (256L << 10) || (regionBytes & 4095) != 0) {
            throw new IllegalArgumentException("a device region is at least 256 KiB and a multiple of 4 KiB: " + regionBytes);
        }
        options = Map.copyOf(options);
    }

    /**
     * Parses {@code TYPE[:key=value,...]}.
     *
     * @param text             the text
     * @param defaultSlot      the slot when the text names none
     * @param defaultTransport the transport when the text names none
     * @return the spec
     * @throws IllegalArgumentException naming what is wrong
     */
    public static DeviceSpec parse(String text, int defaultSlot, TransportKind defaultTransport) {
        int colon = text.indexOf(':');
        String typeName = colon < 0 ? text : text.substring(0, colon);
        DeviceType type;
        try {
            type = DeviceType.valueOf(typeName.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown device type '" + typeName + "' (blk, console, rng)");
        }
        Map<String, String> options = new LinkedHashMap<>();
        if (colon >= 0 && colon + 1 < text.length()) {
            for (String kv : text.substring(colon + 1).split(",")) {
                int eq = kv.indexOf('=');
                String key = eq < 0 ? kv : kv.substring(0, eq);
                String value = eq < 0 ? "" : kv.substring(eq + 1);
                if (options.put(key, value) != null) {
                    throw new IllegalArgumentException(type.cliName() + ": option '" + key + "' given twice");
                }
            }
        }
        int slot = defaultSlot;
        TransportKind transport = defaultTransport;
        long regionBytes = type.defaultRegionBytes;
        for (Map.Entry<String, String> e : Map.copyOf(options).entrySet()) {
            switch (e.getKey()) {
                case "slot" -> slot = parseInt(type, e.getKey(), e.getValue());
                case "transport" -> transport = transport(e.getValue());
                case "region" -> regionBytes = parseSize(type, e.getValue());
                default -> {
                    if (!type.keys.contains(e.getKey())) {
                        throw new IllegalArgumentException(type.cliName() + ": unknown option '" + e.getKey() + "' (known: "
                                + String.join(", ", type.keys) + (type.keys.isEmpty() ? "" : ", ") + "slot, transport, region)");
                    }
                    continue;
                }
            }
            options.remove(e.getKey());
        }
        return new DeviceSpec(type, slot, transport, regionBytes, options);
    }

    /**
     * A transport by its command-line name.
     *
     * @param name {@code msgq-mmio} or {@code shmem-doorbell} (any case, '_' or '-')
     * @return the kind
     * @throws IllegalArgumentException for an unknown name, and for {@code vhost-user}, which is not
     *         a hypervisor transport ({@link VhostUserDeviceSpec} names such devices)
     */
    public static TransportKind transport(String name) {
        TransportKind kind;
        try {
            kind = TransportKind.valueOf(name.toUpperCase(Locale.ROOT).replace('-', '_'));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown transport '" + name + "' ("
                    + String.join(", ", TransportKind.hosted().stream().map(DeviceSpec::transportName).toList()) + ")");
        }
        if (!kind.isHosted()) {
            throw new IllegalArgumentException(NOT_HOSTED);
        }
        return kind;
    }

    /**
     * A transport's command-line name.
     *
     * @param kind the kind
     * @return {@code msgq-mmio} or {@code shmem-doorbell}
     */
    public static String transportName(TransportKind kind) {
        return kind.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    /**
     * The shared region's name, which tells the guest what the device is: {@code VM.SLOT.TYPE.TRANSPORT}.
     *
     * @param vmName the secondary's name
     * @return the region name
     */
    public String regionName(String vmName) {
        return vmName + "." + slot + "." + type.cliName() + "." + transportName(transport);
    }

    /**
     * Reads a region name back (the guest's side of {@link #regionName}).
     *
     * @param vmName     the secondary's name
     * @param regionName the region's name
     * @param sizeBytes  the region's size
     * @return the spec (without type options), or null if the name is not a device region of that VM
     */
    public static DeviceSpec fromRegionName(String vmName, String regionName, long sizeBytes) {
        if (!regionName.startsWith(vmName + ".")) {
            return null;
        }
        String[] parts = regionName.substring(vmName.length() + 1).split("\\.");
        if (parts.length != 3) {
            return null;
        }
        try {
            return parse(parts[1] + ":slot=" + parts[0] + ",transport=" + parts[2], 0, TransportKind.MSGQ_MMIO)
                    .withRegionBytes(sizeBytes);
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    private DeviceSpec withRegionBytes(long bytes) {
        return new DeviceSpec(type, slot, transport, bytes, options);
    }

    /**
     * An option of the type, or a default.
     *
     * @param key      the key
     * @param fallback the default
     * @return the value
     */
    public String option(String key, String fallback) {
        return options.getOrDefault(key, fallback);
    }

    /**
     * Whether a flag option (like {@code ro}) is present.
     *
     * @param key the key
     * @return whether it was given
     */
    public boolean flag(String key) {
        return options.containsKey(key);
    }

    @Override
    public String toString() {
        return type.cliName() + "@" + slot + " over " + transportName(transport);
    }

    private static int parseInt(DeviceType type, String key, String value) {
        try {
            return Integer.parseInt(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(type.cliName() + ": " + key + " is not a number: '" + value + "'");
        }
    }

    private static long parseSize(DeviceType type, String value) {
        try {
            return dev.airlock.cli.machine.ByteSize.parse(value);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(type.cliName() + ": region: " + e.getMessage());
        }
    }
}
