package dev.airlock.transport;

import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;

import static dev.airlock.transport.ShmemHeaderLayout.*;

/**
 * The device side of shmem-doorbell for one device: publishes the device's state into the header
 * and serves the driver's requests from it (see {@link ShmemHeaderLayout} for the handshake).
 *
 * <p>A device may be created over a header that a driver is already using: a backend process that
 * replaces a dead one. It then rewrites every field the device owns (ack_seq and result included)
 * but leaves the driver's line alone, and takes the request_seq it finds as served: that request,
 * if any, was meant for the dead device. A driver re-sends until the new device acknowledges (see
 * {@code ShmemDriverTransport}).
 */
final class ShmemDeviceSlot extends DeviceSlot {
    /** The driver's request, each field read once from the header. */
    private record HeaderRequest(int seq, int op, int arg0, int arg1, long arg2, long arg3, long arg4) {
        static HeaderRequest read(MemorySegment header, int seq) {
            return new HeaderRequest(seq, getInt(header, OP_OFFSET), getInt(header, ARG0_OFFSET), getInt(header, ARG1_OFFSET),
                    getLong(header, ARG2_OFFSET), getLong(header, ARG3_OFFSET), getLong(header, ARG4_OFFSET));
        }
    }

    private final MemorySegment header;
    private int lastSeq;
    private int configSeq;

    ShmemDeviceSlot(VmContext vm, VmId peer, int slot, DeviceCore core, MemorySegment header) {
        super(vm, peer, slot, core);
        this.header = ShmemHeaderLayout.check(header);
        // Whatever request is there belongs to an earlier device session (an untrusted number only).
        this.lastSeq = getIntAcquire(header, REQUEST_SEQ_OFFSET);
        header.asSlice(0, REQUEST_SEQ_OFFSET).fill((byte) 0);
        header.asSlice(ACK_SEQ_OFFSET, HEADER_LENGTH - ACK_SEQ_OFFSET).fill((byte) 0);
        setInt(header, MAGIC_OFFSET, MAGIC);
        setInt(header, VERSION_OFFSET, VERSION);
        setInt(header, DEVICE_ID_OFFSET, core.model().deviceId());
        setInt(header, VENDOR_ID_OFFSET, MmioRegisters.VENDOR_ID);
        setLong(header, DEVICE_FEATURES_OFFSET, core.model().deviceFeatures());
        setInt(header, QUEUE_COUNT_OFFSET, core.queueCount());
        setInt(header, CONFIG_SIZE_OFFSET, core.model().configSizeBytes());
        publish();
    }

    @Override
    TransportKind kind() {
        return TransportKind.SHMEM_DOORBELL;
    }

    @Override
    void onDoorbell(int bits) {
        if ((bits & (1 << DoorbellFlagsLayout.CONTROL_BIT)) != 0) {
            serveRequest();
        }
        notifyQueues(bits & ~(1 << DoorbellFlagsLayout.CONTROL_BIT));
    }

    private void serveRequest() {
        // Pairs with the driver's setRelease of request_seq: op and args written before it are visible.
        int seq = getIntAcquire(header, REQUEST_SEQ_OFFSET);
        if (seq == lastSeq) {
            return; // nothing new: a spurious or repeated CONTROL flag
        }
        HeaderRequest request = HeaderRequest.read(header, seq);
        int result = apply(request);
        lastSeq = seq;
        publish();
        setInt(header, RESULT_OFFSET, result);
        // Publishes result, status, queue table and configuration; pairs with the driver's getAcquire of ack_seq.
        setIntRelease(header, ACK_SEQ_OFFSET, seq);
        ring(DoorbellFlagsLayout.CONTROL_ACK_BIT);
    }

    private int apply(HeaderRequest r) {
        return switch (r.op()) {
            case OP_WRITE_STATUS -> unused(r, r.arg1(), r.arg2(), r.arg3(), r.arg4()) ? malformed(r)
                    : core.writeStatus(r.arg0());
            case OP_WRITE_FEATURES -> {
                if (unused(r, r.arg0(), r.arg1(), r.arg3(), r.arg4())) {
                    yield malformed(r);
                }
                int low = core.writeDriverFeaturesWord(0, (int) r.arg2());
                yield low != TransportStatus.OK ? low : core.writeDriverFeaturesWord(1, (int) (r.arg2() >>> 32));
            }
            case OP_ENABLE_QUEUE -> {
                int status = core.enableQueue(r.arg0(), r.arg1(), r.arg2(), r.arg3(), r.arg4());
                if (status == TransportStatus.OK) {
                    recordQueue(r.arg0(), r.arg1(), r.arg2(), r.arg3(), r.arg4());
                }
                yield status;
            }
            case OP_WRITE_CONFIG -> {
                if (unused(r, 0, 0, r.arg3(), r.arg4()) || (r.arg2() >>> 32) != 0) {
                    yield malformed(r);
                }
                yield core.writeConfig(r.arg0(), r.arg1(), r.arg2());
            }
            default -> malformed(r);
        };
    }

    private static boolean unused(HeaderRequest r, long a, long b, long c, long d) {
        return (a | b | c | d) != 0;
    }

    private int malformed(HeaderRequest r) {
        core.refuse("header.op", Integer.toUnsignedLong(r.op()), "unknown op or non-zero unused arguments (" + r + ")");
        return TransportStatus.MALFORMED;
    }

    /** Writes the device-owned fields: status, queue table, configuration (under the seqlock). */
    private synchronized void publish() {
        for (int q = 0; q < core.queueCount(); q++) {
            long e = queueEntryOffset(q);
            setInt(header, e + QUEUE_NUM_MAX_OFFSET, core.model().maxQueueSize(q));
            if (!core.queueReady(q)) {
                setInt(header, e + QUEUE_SIZE_OFFSET, 0);
            }
        }
        int size = core.model().configSizeBytes();
        configSeq += 1;
        setIntRelease(header, CONFIG_GENERATION_OFFSET, configSeq); // odd: the space is being rewritten
        VarHandle.storeStoreFence(); // the odd generation is visible before any configuration byte changes
        for (int i = 0; i < size; i++) {
            header.set(java.lang.foreign.ValueLayout.JAVA_BYTE, CONFIG_OFFSET + i, (byte) core.readConfig(i, 1));
        }
        configSeq += 1;
        // Publishes the configuration bytes; pairs with the driver's getAcquire of config_gen after its reads.
        setIntRelease(header, CONFIG_GENERATION_OFFSET, configSeq);
        // Publishes status; the driver reads it with getAcquire.
        setIntRelease(header, STATUS_OFFSET, core.statusMachine().status());
    }

    /** Records the accepted set-up of a queue in the table (called after enableQueue succeeded). */
    private void recordQueue(int queue, int size, long desc, long driver, long device) {
        long e = queueEntryOffset(queue);
        setInt(header, e + QUEUE_SIZE_OFFSET, size);
        setLong(header, e + QUEUE_DESC_OFFSET, desc);
        setLong(header, e + QUEUE_DRIVER_OFFSET, driver);
        setLong(header, e + QUEUE_DEVICE_OFFSET, device);
    }

    @Override
    public void stateChanged() {
        publish();
    }

    @Override
    public void reset() {
        // publish() after the request clears the queue table; nothing else is held here.
    }
}
