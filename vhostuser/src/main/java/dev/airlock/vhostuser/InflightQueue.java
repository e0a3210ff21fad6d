package dev.airlock.vhostuser;

import dev.airlock.virtio.VirtqueueDevice;
import dev.airlock.virtio.Virtqueues;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

import static dev.airlock.vhostuser.InflightQueueRegionLayout.COUNTER_OFFSET;
import static dev.airlock.vhostuser.InflightQueueRegionLayout.DESC_NUM_OFFSET;
import static dev.airlock.vhostuser.InflightQueueRegionLayout.INFLIGHT_OFFSET;
import static dev.airlock.vhostuser.InflightQueueRegionLayout.LAST_BATCH_HEAD_OFFSET;
import static dev.airlock.vhostuser.InflightQueueRegionLayout.NEXT_OFFSET;
import static dev.airlock.vhostuser.InflightQueueRegionLayout.USED_IDX_OFFSET;
import static dev.airlock.vhostuser.InflightQueueRegionLayout.VERSION_OFFSET;
import static dev.airlock.vhostuser.InflightQueueRegionLayout.descOffset;

/**
 * Inflight I/O tracking of one split queue (vhost-user.rst, "Inflight I/O tracking") over its
 * {@link InflightQueueRegionLayout} region. {@link #recover} runs when the ring starts; the
 * {@link VirtqueueDevice.InflightTracker} methods then run on the queue's device thread.
 *
 * <p>The region outlives this process but is written by the previous back-end, which may have been
 * anything: every value read from it is checked (version, desc_num, heads, the batch length).
 */
final class InflightQueue implements VirtqueueDevice.InflightTracker {
    private final String field;
    private final MemorySegment region;
    private final int descNum;
    private final int[] batch;
    private final boolean[] inBatch;
    private int batchCount;
    private long counter;

    InflightQueue(String field, MemorySegment region, int descNum) {
        this.field = field;
        this.region = region;
        this.descNum = descNum;
        this.batch = new int[descNum];
        this.inBatch = new boolean[descNum];
    }

    int descNum() {
        return descNum;
    }

    /**
     * Brings the region in line with the used ring and lists the chains to resubmit, oldest first.
     * A fresh region (version 0) is initialised instead.
     *
     * @param usedIdx the used ring's idx in memory
     * @return the heads still in flight, in the order they were taken
     */
    int[] recover(int usedIdx) {
        int version = region.get(ValueLayout.JAVA_SHORT, VERSION_OFFSET) & 0xffff;
        if (version == 0) {
            region.set(ValueLayout.JAVA_SHORT, DESC_NUM_OFFSET, (short) descNum);
            region.set(ValueLayout.JAVA_SHORT, USED_IDX_OFFSET, (short) usedIdx);
            region.set(ValueLayout.JAVA_SHORT, VERSION_OFFSET, InflightQueueRegionLayout.VERSION);
            return new int[0];
        }
        if (version != InflightQueueRegionLayout.VERSION) {
            throw new VhostUserProtocolException(field + ".version", version, "unknown inflight region version");
        }
        int storedNum = region.get(ValueLayout.JAVA_SHORT, DESC_NUM_OFFSET) & 0xffff;
        if (storedNum != descNum) {
            throw new VhostUserProtocolException(field + ".desc_num", storedNum, "does not match the queue size " + descNum);
        }
        int regionUsed = region.get(ValueLayout.JAVA_SHORT, USED_IDX_OFFSET) & 0xffff;
        if (regionUsed != usedIdx) {
            clearLastBatch(Virtqueues.idxDistance(regionUsed, usedIdx));
            region.set(ValueLayout.JAVA_SHORT, USED_IDX_OFFSET, (short) usedIdx);
        }
        return inflightHeads();
    }

    /** The last batch was published before the back-end died but its flags were not cleared: clear them. */
    private void clearLastBatch(int batchLength) {
        if (batchLength > descNum) {
            throw new VhostUserProtocolException(field + ".used_idx", batchLength, "last batch longer than the queue size " + descNum);
        }
        int head = region.get(ValueLayout.JAVA_SHORT, LAST_BATCH_HEAD_OFFSET) & 0xffff;
        for (int i = 0; i < batchLength; i++) {
            if (head >= descNum) {
                throw new VhostUserProtocolException(field + ".last_batch_head", head, ">= queue size " + descNum);
            }
            region.set(ValueLayout.JAVA_BYTE, descOffset(head) + INFLIGHT_OFFSET, (byte) 0);
            head = region.get(ValueLayout.JAVA_SHORT, descOffset(head) + NEXT_OFFSET) & 0xffff;
        }
    }

    private int[] inflightHeads() {
        List<long[]> found = new ArrayList<>();
        long maxCounter = -1;
        for (int head = 0; head < descNum; head++) {
            byte flag = region.get(ValueLayout.JAVA_BYTE, descOffset(head) + INFLIGHT_OFFSET);
            if (flag == 0) {
                continue;
            }
            if (flag != 1) {
                throw new VhostUserProtocolException(field + ".desc[" + head + "].inflight", flag & 0xff, "not 0 or 1");
            }
            long c = region.get(ValueLayout.JAVA_LONG, descOffset(head) + COUNTER_OFFSET);
            found.add(new long[] {c, head});
            maxCounter = Math.max(maxCounter, c);
        }
        found.sort((a, b) -> Long.compareUnsigned(a[0], b[0]));
        counter = maxCounter + 1;
        int[] heads = new int[found.size()];
        for (int i = 0; i < heads.length; i++) {
            heads[i] = (int) found.get(i)[1];
        }
        return heads;
    }

    @Override
    public void popped(int head) {
        long base = descOffset(head);
        region.set(ValueLayout.JAVA_LONG, base + COUNTER_OFFSET, counter++);
        region.set(ValueLayout.JAVA_BYTE, base + INFLIGHT_OFFSET, (byte) 1);
    }

    @Override
    public void used(int head) {
        short last = region.get(ValueLayout.JAVA_SHORT, LAST_BATCH_HEAD_OFFSET);
        region.set(ValueLayout.JAVA_SHORT, descOffset(head) + NEXT_OFFSET, last);
        region.set(ValueLayout.JAVA_SHORT, LAST_BATCH_HEAD_OFFSET, (short) head);
        if (!inBatch[head]) {
            // A hostile driver can make a used (not yet published) head available again; each head is listed once.
            inBatch[head] = true;
            batch[batchCount++] = head;
        }
    }

    @Override
    public void published(int usedIdx) {
        for (int i = 0; i < batchCount; i++) {
            region.set(ValueLayout.JAVA_BYTE, descOffset(batch[i]) + INFLIGHT_OFFSET, (byte) 0);
            inBatch[batch[i]] = false;
        }
        batchCount = 0;
        region.set(ValueLayout.JAVA_SHORT, USED_IDX_OFFSET, (short) usedIdx);
    }
}
