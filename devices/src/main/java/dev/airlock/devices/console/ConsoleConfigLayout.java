package dev.airlock.devices.console;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

/**
 * The configuration space of a console device, {@code struct virtio_console_config}
 * (VIRTIO 1.2 §5.3.4): 12 bytes, little-endian, no padding.
 *
 * <pre>
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-------------------------------+-------------------------------+
 *  |          cols (le16)          |          rows (le16)          |  0
 *  +-------------------------------+-------------------------------+
 *  |                     max_nr_ports (le32)                       |  4
 *  +---------------------------------------------------------------+
 *  |                       emerg_wr (le32)                         |  8
 *  +---------------------------------------------------------------+
 * </pre>
 *
 * <table class="striped">
 * <caption>Who touches each field</caption>
 * <tr><th>field</th><th>written by</th><th>read by</th><th>valid with</th></tr>
 * <tr><td>cols, rows</td><td>device ({@link ConsoleDevice#resize}), then a configuration
 *     change notification</td><td>driver, under the generation retry loop (§2.5.1)</td>
 *     <td>{@link ConsoleDevice#VIRTIO_CONSOLE_F_SIZE}</td></tr>
 * <tr><td>max_nr_ports</td><td>device, constant 1</td><td>driver</td>
 *     <td>{@code VIRTIO_CONSOLE_F_MULTIPORT} (never offered here)</td></tr>
 * <tr><td>emerg_wr</td><td>driver: the low byte is written to port 0 at once, even before
 *     feature negotiation (§5.3.4)</td><td>write-only: the device answers reads with 0</td>
 *     <td>{@link ConsoleDevice#VIRTIO_CONSOLE_F_EMERG_WRITE}</td></tr>
 * </table>
 *
 * <p>The space is not in shared memory: the transport reads it through
 * {@link ConsoleDevice#readConfig} one access at a time, so no field needs an ordered access mode.
 */
public final class ConsoleConfigLayout {
    // Every field is naturally aligned, so the layout needs no padding and matches the packed C struct.
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** {@code struct virtio_console_config}. */
    public static final StructLayout LAYOUT = MemoryLayout.structLayout(
            LE16.withName("cols"),
            LE16.withName("rows"),
            LE32.withName("max_nr_ports"),
            LE32.withName("emerg_wr")).withName("virtio_console_config");

    /** Offset of {@code cols}. */
    public static final int COLS_OFFSET = (int) LAYOUT.byteOffset(groupElement("cols"));
    /** Offset of {@code rows}. */
    public static final int ROWS_OFFSET = (int) LAYOUT.byteOffset(groupElement("rows"));
    /** Offset of {@code max_nr_ports}. */
    public static final int MAX_NR_PORTS_OFFSET = (int) LAYOUT.byteOffset(groupElement("max_nr_ports"));
    /** Offset of {@code emerg_wr}. */
    public static final int EMERG_WR_OFFSET = (int) LAYOUT.byteOffset(groupElement("emerg_wr"));
    /** Size of the configuration space, 12 bytes. */
    public static final int CONFIG_LENGTH = (int) LAYOUT.byteSize();

    static {
        if (CONFIG_LENGTH != 12 || COLS_OFFSET != 0 || ROWS_OFFSET != 2 || MAX_NR_PORTS_OFFSET != 4 || EMERG_WR_OFFSET != 8) {
            throw new ExceptionInInitializerError("struct virtio_console_config does not match VIRTIO 1.2 §5.3.4");
        }
    }

    private ConsoleConfigLayout() {
    }

    /**
     * The little-endian value of a field access into a configuration image.
     *
     * @param image     the 12 bytes of the space
     * @param offset    the offset, aligned to {@code sizeBytes}
     * @param sizeBytes 1, 2 or 4
     * @return the value in the low {@code sizeBytes} bytes
     */
    static long read(byte[] image, int offset, int sizeBytes) {
        long v = 0;
        for (int b = sizeBytes - 1; b >= 0; b--) {
            v = v << 8 | (image[offset + b] & 0xffL);
        }
        return v;
    }

    /**
     * Stores a little-endian field into a configuration image.
     *
     * @param image     the 12 bytes of the space
     * @param offset    the offset
     * @param sizeBytes 2 or 4
     * @param value     the value in the low bytes
     */
    static void write(byte[] image, int offset, int sizeBytes, long value) {
        for (int b = 0; b < sizeBytes; b++) {
            image[offset + b] = (byte) (value >>> (8 * b));
        }
    }
}
