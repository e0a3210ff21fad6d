package dev.airlock.cli.machine;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A device a secondary VM drives over vhost-user, with this process as its VMM, as the command line
 * names it: {@code TYPE,vhost-user=SOCKET[,region=SIZE][,reconnect=SECONDS]}, for example
 * {@code blk,vhost-user=/tmp/vub.sock} (the QEMU spelling; {@code blk:vhost-user=...} works too).
 * The backend (qemu-storage-daemon, {@code airlock backend blk --vhost-user}) listens on SOCKET; it
 * is sent one memfd region of {@code region} bytes holding the vrings and the bounce pool, and never
 * the VM's private RAM. With {@code reconnect}, losing the backend is not the end: the VM keeps its
 * requests and connects again (the backend may be restarted by hand) for up to that many seconds,
 * then resubmits them.
 *
 * <p>Only blk for now (the frontend needs each type's config length, and only blk is tested
 * against a backend Airlock did not write).
 *
 * @param type        the device type (blk)
 * @param socket      the backend's Unix socket
 * @param regionBytes the size of the region shared with the backend: vrings and bounce pool
 * @param reconnectSeconds how long to try to reconnect after losing the backend; 0 fails the device at once
 */
public record VhostUserDeviceSpec(DeviceSpec.DeviceType type, Path socket, long regionBytes, int reconnectSeconds) {
    /** The key that names the socket. */
    public static final String SOCKET_KEY = "vhost-user";
    /** The default size of the shared region (the blk default of a hypervisor device). */
    public static final long DEFAULT_REGION_BYTES = 32L << 20;
    /** The smallest shared region: rings and a few bounce slots. */
    public static final long MIN_REGION_BYTES = 256L << 10;
    /** The largest shared region, as for a hypervisor device. */
    public static final long MAX_REGION_BYTES = EmbeddedMachine.MAX_REGION_BYTES;
    /** The longest reconnect window: a day. */
    public static final int MAX_RECONNECT_SECONDS = 86_400;

    /** Checks the fields. */
    public VhostUserDeviceSpec {
        if (type != DeviceSpec.DeviceType.BLK) {
            throw new IllegalArgumentException(unsupported(type.cliName()));
        }
        if (socket == null || socket.toString().isEmpty()) {
            throw new IllegalArgumentException("blk: say which socket: blk,vhost-user=SOCKET");
        }
        if (regionBytes < MIN_REGION_BYTES || regionBytes > MAX_REGION_BYTES || (regionBytes & 4095) != 0) {
            throw new IllegalArgumentException("blk: a vhost-user region is 256 KiB to 1 GiB and a multiple of 4 KiB: " + regionBytes);
        }
        if (reconnectSeconds < 0 || reconnectSeconds > MAX_RECONNECT_SECONDS) {
            throw new IllegalArgumentException("blk: reconnect is 0 to " + MAX_RECONNECT_SECONDS + " seconds: " + reconnectSeconds);
        }
    }

    /**
     * The same device with no reconnecting.
     *
     * @param type        the device type (blk)
     * @param socket      the backend's Unix socket
     * @param regionBytes the size of the shared region
     */
    public VhostUserDeviceSpec(DeviceSpec.DeviceType type, Path socket, long regionBytes) {
        this(type, socket, regionBytes, 0);
    }

    /**
     * Parses {@code TYPE,vhost-user=SOCKET[,region=SIZE][,reconnect=SECONDS]}.
     *
     * @param text the text
     * @return the spec
     * @throws IllegalArgumentException naming what is wrong
     */
    public static VhostUserDeviceSpec parse(String text) {
        int separator = firstOf(text, ',', ':');
        String typeName = separator < 0 ? text : text.substring(0, separator);
        DeviceSpec.DeviceType type;
        try {
            type = DeviceSpec.DeviceType.valueOf(typeName.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown device type '" + typeName + "' (over vhost-user: blk)");
        }
        if (type != DeviceSpec.DeviceType.BLK) {
            throw new IllegalArgumentException(unsupported(type.cliName()));
        }
        Map<String, String> options = new LinkedHashMap<>();
        if (separator >= 0) {
            for (String kv : text.substring(separator + 1).split(",", -1)) {
                int eq = kv.indexOf('=');
                String key = eq < 0 ? kv : kv.substring(0, eq);
                if (eq < 0 || !key.equals(SOCKET_KEY) && !key.equals("region") && !key.equals("reconnect")) {
                    throw new IllegalArgumentException(type.cliName() + ": unknown option '" + kv + "' (known: "
                            + SOCKET_KEY + "=SOCKET, region=SIZE, reconnect=SECONDS)");
                }
                if (options.put(key, kv.substring(eq + 1)) != null) {
                    throw new IllegalArgumentException(type.cliName() + ": option '" + key + "' given twice");
                }
            }
        }
        String socket = options.get(SOCKET_KEY);
        if (socket == null || socket.isEmpty()) {
            throw new IllegalArgumentException(type.cliName() + ": say which socket: " + type.cliName() + "," + SOCKET_KEY + "=SOCKET");
        }
        long regionBytes = DEFAULT_REGION_BYTES;
        String region = options.get("region");
        if (region != null) {
            try {
                regionBytes = ByteSize.parse(region);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(type.cliName() + ": region: " + e.getMessage());
            }
        }
        int reconnect = 0;
        String seconds = options.get("reconnect");
        if (seconds != null) {
            try {
                reconnect = Integer.parseInt(seconds);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(type.cliName() + ": reconnect is a number of seconds: '" + seconds + "'");
            }
        }
        return new VhostUserDeviceSpec(type, Path.of(socket), regionBytes, reconnect);
    }

    /**
     * The device's name in reports: {@code TYPE@vhost-user:SOCKETNAME}.
     *
     * @return for example {@code blk@vhost-user:vub.sock}
     */
    public String displayName() {
        Path file = socket.getFileName();
        return type.cliName() + "@vhost-user:" + (file == null ? socket : file);
    }

    @Override
    public String toString() {
        return displayName();
    }

    private static String unsupported(String typeName) {
        return typeName + " over vhost-user is not supported (only blk)";
    }

    private static int firstOf(String text, char a, char b) {
        int i = text.indexOf(a);
        int j = text.indexOf(b);
        return i < 0 ? j : j < 0 ? i : Math.min(i, j);
    }
}
