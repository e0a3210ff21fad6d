package dev.airlock.vhostuser;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * The payload of GET_CONFIG and SET_CONFIG (vhost-user.rst, "Virtio device config space"), host
 * byte order.
 *
 * <pre>
 *  0              4              8              12
 *  +--------------+--------------+--------------+------------------+
 *  | offset (u32) | size (u32)   | flags (u32)  | payload[size]    |
 *  +--------------+--------------+--------------+------------------+
 *  flags: 0 = a driver write of writable fields, 1 = live migration (not supported here)
 * </pre>
 *
 * <table>
 *   <caption>Checks</caption>
 *   <tr><th>field</th><th>rule</th></tr>
 *   <tr><td>offset, size</td><td>offset + size at most {@link #MAX_CONFIG_LENGTH}; message size exactly 12 + size</td></tr>
 *   <tr><td>flags</td><td>GET: ignored (QEMU sends 0); SET: must be 0</td></tr>
 * </table>
 */
final class VhostUserConfigLayout {
    /** The fixed part. */
    static final StructLayout LAYOUT = MemoryLayout.structLayout(
            JAVA_INT.withName("offset"), JAVA_INT.withName("size"), JAVA_INT.withName("flags"));
    static final long OFFSET_OFFSET = LAYOUT.byteOffset(groupElement("offset"));
    static final long SIZE_OFFSET = LAYOUT.byteOffset(groupElement("size"));
    static final long FLAGS_OFFSET = LAYOUT.byteOffset(groupElement("flags"));
    static final int HEADER_LENGTH = 12;
    /** VHOST_USER_MAX_CONFIG_SIZE in QEMU. */
    static final int MAX_CONFIG_LENGTH = 256;

    static {
        if (LAYOUT.byteSize() != HEADER_LENGTH) {
            throw new ExceptionInInitializerError("vhost-user config header has the wrong size");
        }
    }

    private VhostUserConfigLayout() {
    }
}
