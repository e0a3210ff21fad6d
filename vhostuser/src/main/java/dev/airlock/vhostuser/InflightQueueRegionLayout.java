package dev.airlock.vhostuser;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * One queue's region of the inflight buffer, split-ring form (vhost-user.rst, "Inflight I/O
 * tracking": {@code QueueRegionSplit} and {@code DescStateSplit}). The buffer is a memfd the back-end
 * creates (GET_INFLIGHT_FD), the front-end keeps across back-end restarts and hands back
 * (SET_INFLIGHT_FD); it holds one region per queue, each {@link #regionLength} bytes (64-byte aligned).
 *
 * <pre>
 *  queue region header (16 bytes)
 *  0              8          10         12                14         16
 *  +--------------+----------+----------+-----------------+----------+
 *  | features u64 | version  | desc_num | last_batch_head | used_idx |
 *  +--------------+----------+----------+-----------------+----------+
 *
 *  desc[i], i in 0 .. desc_num-1 (16 bytes each), from offset 16
 *  0          1             6        8                 16
 *  +----------+-------------+--------+-----------------+
 *  | inflight | padding[5]  | next   | counter (u64)   |
 *  +----------+-------------+--------+-----------------+
 * </pre>
 *
 * <table>
 *   <caption>Who writes and reads each field</caption>
 *   <tr><th>field</th><th>writer</th><th>reader</th></tr>
 *   <tr><td>version</td><td>back-end on first use (0 = fresh buffer, 1 = in use)</td><td>a restarted back-end</td></tr>
 *   <tr><td>desc_num</td><td>back-end (the queue size)</td><td>a restarted back-end, checked</td></tr>
 *   <tr><td>desc[head].inflight, counter</td><td>back-end when it takes a chain (plain stores, in program order)</td>
 *       <td>a restarted back-end: inflight chains are resubmitted in counter order</td></tr>
 *   <tr><td>desc[head].next, last_batch_head</td><td>back-end before publishing the used idx: the batch list</td>
 *       <td>a restarted back-end, when used_idx lags the used ring's idx</td></tr>
 *   <tr><td>used_idx</td><td>back-end after the batch's inflight flags are cleared</td><td>a restarted back-end</td></tr>
 * </table>
 *
 * <p>Only one back-end process uses the buffer at a time and a dead process's stores are all in the
 * memfd, so plain accesses in program order suffice; the front-end never reads it.
 */
final class InflightQueueRegionLayout {
    /** The header. */
    static final StructLayout HEADER = MemoryLayout.structLayout(
            JAVA_LONG.withName("features"),
            JAVA_SHORT.withName("version"),
            JAVA_SHORT.withName("desc_num"),
            JAVA_SHORT.withName("last_batch_head"),
            JAVA_SHORT.withName("used_idx"));
    static final long VERSION_OFFSET = HEADER.byteOffset(groupElement("version"));
    static final long DESC_NUM_OFFSET = HEADER.byteOffset(groupElement("desc_num"));
    static final long LAST_BATCH_HEAD_OFFSET = HEADER.byteOffset(groupElement("last_batch_head"));
    static final long USED_IDX_OFFSET = HEADER.byteOffset(groupElement("used_idx"));
    static final int HEADER_LENGTH = 16;

    /** One descriptor state. */
    static final StructLayout DESC_STATE = MemoryLayout.structLayout(
            JAVA_BYTE.withName("inflight"),
            MemoryLayout.paddingLayout(5),
            JAVA_SHORT.withName("next"),
            JAVA_LONG.withName("counter"));
    static final long INFLIGHT_OFFSET = DESC_STATE.byteOffset(groupElement("inflight"));
    static final long NEXT_OFFSET = DESC_STATE.byteOffset(groupElement("next"));
    static final long COUNTER_OFFSET = DESC_STATE.byteOffset(groupElement("counter"));
    static final int DESC_STATE_LENGTH = 16;

    /** The version this back-end writes. */
    static final short VERSION = 1;
    static final int REGION_ALIGNMENT = 64;

    static {
        if (HEADER.byteSize() != HEADER_LENGTH || DESC_STATE.byteSize() != DESC_STATE_LENGTH) {
            throw new ExceptionInInitializerError("inflight queue region layout has the wrong size");
        }
    }

    private InflightQueueRegionLayout() {
    }

    /** The bytes one queue of {@code queueSize} descriptors takes, rounded up to 64. */
    static long regionLength(int queueSize) {
        long raw = HEADER_LENGTH + (long) DESC_STATE_LENGTH * queueSize;
        return (raw + REGION_ALIGNMENT - 1) & -REGION_ALIGNMENT;
    }

    /** The offset of {@code desc[head]} in a region. */
    static long descOffset(int head) {
        return HEADER_LENGTH + (long) DESC_STATE_LENGTH * head;
    }
}
