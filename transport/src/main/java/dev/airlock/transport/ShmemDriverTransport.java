package dev.airlock.transport;

import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.virtio.Virtqueues;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.concurrent.locks.ReentrantLock;

import static dev.airlock.transport.ShmemHeaderLayout.*;

/**
 * The driver side of shmem-doorbell: reads the device's state straight from the header (no round
 * trip for status, features, queue limits or configuration) and makes changes with the
 * write/ring/acknowledge handshake of {@link ShmemHeaderLayout}.
 *
 * <p>After a new backend attaches, the header still holds what the dead device last wrote, which
 * looks valid (magic and all), and the new device initialises the header whenever it gets there,
 * treating the request it finds as the old session's. So nothing in the header is trusted until the
 * new device has acknowledged a request: the first call after the attach first resets the device
 * (it is in reset state anyway), re-sending the reset with a new sequence number at growing
 * intervals until it is acknowledged, at most the timeout. Sequence numbers skip 0, which is what
 * a newly initialised header acknowledges.
 */
final class ShmemDriverTransport extends DriverSlot {
    private static final long FIRST_RESEND_NS = 5_000_000;
    private static final long MAX_RESEND_NS = 200_000_000;

    private final ReentrantLock requestLock = new ReentrantLock();
    private final MemorySegment header;
    private int seq;
    /** Set when a new backend attached: the header is stale until a request is acknowledged. */
    private volatile boolean resync;

    ShmemDriverTransport(DriverHost host, VmContext vm, SharedRegionMapping region, int slot, long timeoutNs) {
        super(host, vm, region, slot, timeoutNs);
        this.header = ShmemHeaderLayout.check(region.region().segment());
        this.seq = getInt(header, REQUEST_SEQ_OFFSET);
    }

    @Override
    public TransportKind kind() {
        return TransportKind.SHMEM_DOORBELL;
    }

    @Override
    public long dmaOffset() {
        return HEADER_LENGTH;
    }

    @Override
    void onReattached() {
        resync = true;
    }

    /** One handshake; returns the device's result code. */
    private int request(int op, int arg0, int arg1, long arg2, long arg3, long arg4) {
        requestLock.lock();
        try {
            int session = ready();
            int s = post(op, arg0, arg1, arg2, arg3, arg4);
            // Pairs with the device's setRelease of ack_seq: result, status and table are visible after it.
            await(() -> getIntAcquire(header, ACK_SEQ_OFFSET) == s, "request op " + op, session);
            return getInt(header, RESULT_OFFSET);
        } finally {
            requestLock.unlock();
        }
    }

    /** Writes a request into the header and rings for it; returns its sequence number. */
    private int post(int op, int arg0, int arg1, long arg2, long arg3, long arg4) {
        setInt(header, OP_OFFSET, op);
        setInt(header, ARG0_OFFSET, arg0);
        setInt(header, ARG1_OFFSET, arg1);
        setLong(header, ARG2_OFFSET, arg2);
        setLong(header, ARG3_OFFSET, arg3);
        setLong(header, ARG4_OFFSET, arg4);
        int s = ++seq == 0 ? ++seq : seq;
        // Publishes op and args; pairs with the device's getAcquire of request_seq.
        setIntRelease(header, REQUEST_SEQ_OFFSET, s);
        ring(DoorbellFlagsLayout.flag(slot, DoorbellFlagsLayout.CONTROL_BIT));
        return s;
    }

    /**
     * Checks the transport works and, after a new backend attached, first gets the header from the
     * new device (see the class comment).
     *
     * @return the device session, for {@link #await}
     */
    private int ready() {
        int session = begin();
        if (resync) {
            requestLock.lock();
            try {
                if (resync) {
                    resynchronize(session);
                }
            } finally {
                requestLock.unlock();
            }
        }
        return session;
    }

    private void resynchronize(int session) {
        long deadline = System.nanoTime() + timeoutNs;
        long resendNs = FIRST_RESEND_NS;
        while (true) {
            int s = post(OP_WRITE_STATUS, 0, 0, 0, 0, 0);
            long now = System.nanoTime();
            long until = deadline - now < resendNs ? deadline : now + resendNs;
            if (awaitUntil(() -> getIntAcquire(header, ACK_SEQ_OFFSET) == s, until, "the reset after the attach", session)) {
                resync = false;
                return;
            }
            if (System.nanoTime() - deadline >= 0) {
                markBroken("the new backend did not answer within " + timeoutNs / 1_000_000 + " ms of its attach");
                checkNotBroken();
            }
            resendNs = Math.min(2 * resendNs, MAX_RESEND_NS);
        }
    }

    private void requestOk(String what, int op, int arg0, int arg1, long arg2, long arg3, long arg4) {
        int result = request(op, arg0, arg1, arg2, arg3, arg4);
        if (result != TransportStatus.OK) {
            throw new TransportException(name + ": " + what + " answered " + TransportStatus.describe(result));
        }
    }

    @Override
    public int probe() {
        ready();
        int magic = getInt(header, MAGIC_OFFSET);
        int version = getInt(header, VERSION_OFFSET);
        if (magic != MAGIC || version != VERSION) {
            throw new TransportException(name + ": no shmem-doorbell header (magic 0x" + Integer.toHexString(magic)
                    + ", version " + version + ")");
        }
        return getInt(header, DEVICE_ID_OFFSET);
    }

    @Override
    public long deviceFeatures() {
        ready();
        return getLong(header, DEVICE_FEATURES_OFFSET);
    }

    @Override
    public void writeDriverFeatures(long features) {
        requestOk("driver features", OP_WRITE_FEATURES, 0, 0, features, 0, 0);
    }

    @Override
    public int status() {
        ready();
        return getIntAcquire(header, STATUS_OFFSET) & 0xff;
    }

    @Override
    public void writeStatus(int status) {
        request(OP_WRITE_STATUS, status, 0, 0, 0, 0); // a refusal shows when the status is re-read
    }

    @Override
    public int queueNumMax(int queue) {
        ready();
        int count = getInt(header, QUEUE_COUNT_OFFSET);
        if (queue < 0 || queue >= DoorbellFlagsLayout.MAX_QUEUES || queue >= count) {
            return 0;
        }
        int max = getInt(header, queueEntryOffset(queue) + QUEUE_NUM_MAX_OFFSET);
        return Virtqueues.isValidQueueSize(max) ? max : 0; // the device's value is checked like any other input
    }

    @Override
    public boolean enableQueue(int queue, int size, long descAddr, long availAddr, long usedAddr) {
        return request(OP_ENABLE_QUEUE, queue, size, descAddr, availAddr, usedAddr) == TransportStatus.OK;
    }

    @Override
    public int configGeneration() {
        ready();
        // Orders the configuration reads before this re-read of config_gen (seqlock reader side).
        VarHandle.loadLoadFence();
        long deadline = System.nanoTime() + timeoutNs;
        int gen;
        while (((gen = getIntAcquire(header, CONFIG_GENERATION_OFFSET)) & 1) != 0) {
            if (System.nanoTime() - deadline > 0) {
                markBroken("configuration generation stayed odd for " + timeoutNs / 1_000_000 + " ms");
                checkNotBroken();
            }
            Thread.onSpinWait();
        }
        return gen;
    }

    @Override
    public long readConfig(int offset, int sizeBytes) {
        checkConfigAccess(offset, sizeBytes);
        ready();
        int size = Math.min(getInt(header, CONFIG_SIZE_OFFSET), CONFIG_LENGTH);
        if (size < 0 || offset > size - sizeBytes) {
            throw new TransportException(name + ": config read at " + offset + " outside the " + size + "-byte space");
        }
        long value = 0;
        for (int i = sizeBytes - 1; i >= 0; i--) {
            value = value << 8 | (header.get(ValueLayout.JAVA_BYTE, CONFIG_OFFSET + offset + i) & 0xff);
        }
        return value;
    }

    @Override
    public void writeConfig(int offset, int sizeBytes, long value) {
        checkConfigAccess(offset, sizeBytes);
        long mask = sizeBytes == 4 ? 0xffff_ffffL : (1L << (8 * sizeBytes)) - 1;
        requestOk("config write at " + offset, OP_WRITE_CONFIG, offset, sizeBytes, value & mask, 0, 0);
    }
}
