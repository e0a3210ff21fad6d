package dev.airlock.vhostuser;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * The payload of GET_INFLIGHT_FD and SET_INFLIGHT_FD (vhost-user.rst, "Inflight description"), host
 * byte order; the C struct is padded to 24 bytes and QEMU sends all 24.
 *
 * <pre>
 *  0               8               16         18         20        24
 *  +---------------+---------------+----------+----------+---------+
 *  | mmap_size     | mmap_offset   | num_     | queue_   | padding |
 *  | (u64)         | (u64)         | queues   | size     |         |
 *  +---------------+---------------+----------+----------+---------+
 * </pre>
 *
 * <table>
 *   <caption>Who writes what</caption>
 *   <tr><th>message</th><th>front-end sends</th><th>back-end answers</th></tr>
 *   <tr><td>GET_INFLIGHT_FD</td><td>num_queues, queue_size (sizes 0)</td>
 *       <td>mmap_size, mmap_offset 0, the same counts, and the memfd</td></tr>
 *   <tr><td>SET_INFLIGHT_FD</td><td>all four and the fd; the back-end checks mmap_size against the counts</td><td>nothing</td></tr>
 * </table>
 */
final class VhostUserInflightLayout {
    /** The inflight description. */
    static final StructLayout LAYOUT = MemoryLayout.structLayout(
            JAVA_LONG.withName("mmap_size"),
            JAVA_LONG.withName("mmap_offset"),
            JAVA_SHORT.withName("num_queues"),
            JAVA_SHORT.withName("queue_size"),
            MemoryLayout.paddingLayout(4));
    static final long MMAP_SIZE_OFFSET = LAYOUT.byteOffset(groupElement("mmap_size"));
    static final long MMAP_OFFSET_OFFSET = LAYOUT.byteOffset(groupElement("mmap_offset"));
    static final long NUM_QUEUES_OFFSET = LAYOUT.byteOffset(groupElement("num_queues"));
    static final long QUEUE_SIZE_OFFSET = LAYOUT.byteOffset(groupElement("queue_size"));
    static final int LENGTH = 24;

    static {
        if (LAYOUT.byteSize() != LENGTH) {
            throw new ExceptionInInitializerError("vhost-user inflight description is " + LAYOUT.byteSize() + " bytes, not 24");
        }
    }

    private VhostUserInflightLayout() {
    }
}
