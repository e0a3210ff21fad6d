package dev.airlock.transport;

import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;

import static dev.airlock.transport.MmioRegisters.*;

/**
 * The device side of msgq-mmio for one device: the virtio-mmio register file of VIRTIO 1.2 §4.2.2
 * and §4.2.3, answering each decoded request from the {@link DeviceCore}.
 *
 * <p>Rules: registers take 4-byte accesses only; writes to read-only registers are ignored and
 * answered {@link TransportStatus#READ_ONLY}; reads of write-only ones answer 0 and
 * {@link TransportStatus#WRITE_ONLY}; QueueNum, QueueDesc/Driver/Device may be written only while
 * the selected queue is not ready; QueueNum above QueueNumMax is refused; DriverFeatures only
 * between DRIVER and FEATURES_OK (the status machine checks). Each refusal is recorded as a fault.
 */
final class MmioDeviceSlot extends DeviceSlot {
    /** Staged queue registers of the selected queue, per queue, until QueueReady is written 1. */
    private final int[] queueNum;
    private final long[] descAddr;
    private final long[] driverAddr;
    private final long[] deviceAddr;
    private int deviceFeaturesSel;
    private int driverFeaturesSel;
    private int queueSel;

    MmioDeviceSlot(VmContext vm, VmId peer, int slot, DeviceCore core) {
        super(vm, peer, slot, core);
        int n = core.queueCount();
        queueNum = new int[n];
        descAddr = new long[n];
        driverAddr = new long[n];
        deviceAddr = new long[n];
    }

    @Override
    TransportKind kind() {
        return TransportKind.MSGQ_MMIO;
    }

    @Override
    void onDoorbell(int bits) {
        if ((bits & (1 << DoorbellFlagsLayout.CONTROL_BIT)) != 0) {
            core.refuse("doorbell", bits, "CONTROL flag rung on a msgq-mmio device");
        }
        notifyQueues(bits & ~(1 << DoorbellFlagsLayout.CONTROL_BIT));
    }

    /** Performs one access; returns the response. */
    MmioMessageLayout.Response handle(MmioMessageLayout.Request request) {
        int offset = request.offset();
        int status;
        int value = 0;
        if (Integer.compareUnsigned(offset, CONFIG_OFFSET) >= 0) {
            int configOffset = offset - CONFIG_OFFSET;
            if (request.isWrite()) {
                status = core.writeConfig(configOffset, request.sizeBytes(), Integer.toUnsignedLong(request.value()));
            } else {
                status = core.checkConfigAccess(configOffset, request.sizeBytes());
                if (status == TransportStatus.OK) {
                    value = (int) core.readConfig(configOffset, request.sizeBytes());
                }
            }
        } else if (request.sizeBytes() != 4) {
            core.refuse("register[0x" + Integer.toHexString(offset) + "].size", request.sizeBytes(), "registers take 4-byte accesses");
            status = TransportStatus.BAD_SIZE;
        } else if (request.isWrite()) {
            status = write(offset, request.value());
        } else {
            long read = read(offset);
            status = (int) (read >>> 32);
            value = (int) read;
        }
        int type = request.isWrite() ? MmioMessageLayout.TYPE_WRITE_RESPONSE : MmioMessageLayout.TYPE_READ_RESPONSE;
        return new MmioMessageLayout.Response(type, slot, request.seq(), status, value);
    }

    /** Returns {@code status << 32 | value}. */
    private long read(int offset) {
        int value;
        switch (offset) {
            case MAGIC_VALUE_OFFSET -> value = MAGIC_VALUE;
            case VERSION_OFFSET -> value = VERSION;
            case DEVICE_ID_OFFSET -> value = core.model().deviceId();
            case VENDOR_ID_OFFSET -> value = VENDOR_ID;
            case DEVICE_FEATURES_OFFSET -> value = core.statusMachine().deviceFeaturesWord(deviceFeaturesSel);
            case QUEUE_NUM_MAX_OFFSET -> value = queueSel < core.queueCount() ? core.model().maxQueueSize(queueSel) : 0;
            case QUEUE_READY_OFFSET -> value = core.queueReady(queueSel) ? 1 : 0;
            case INTERRUPT_STATUS_OFFSET -> value = core.interruptStatus();
            case STATUS_OFFSET -> value = core.statusMachine().status();
            case CONFIG_GENERATION_OFFSET -> value = core.configGeneration();
            case SHM_LEN_LOW_OFFSET, SHM_LEN_HIGH_OFFSET, SHM_BASE_LOW_OFFSET, SHM_BASE_HIGH_OFFSET -> value = -1;
            case DEVICE_FEATURES_SEL_OFFSET, DRIVER_FEATURES_OFFSET, DRIVER_FEATURES_SEL_OFFSET, QUEUE_SEL_OFFSET,
                 QUEUE_NUM_OFFSET, QUEUE_NOTIFY_OFFSET, INTERRUPT_ACK_OFFSET, QUEUE_DESC_LOW_OFFSET,
                 QUEUE_DESC_HIGH_OFFSET, QUEUE_DRIVER_LOW_OFFSET, QUEUE_DRIVER_HIGH_OFFSET, QUEUE_DEVICE_LOW_OFFSET,
                 QUEUE_DEVICE_HIGH_OFFSET, SHM_SEL_OFFSET -> {
                core.refuse("register[0x" + Integer.toHexString(offset) + "]", offset, "read of a write-only register");
                return (long) TransportStatus.WRITE_ONLY << 32;
            }
            default -> {
                core.refuse("register", Integer.toUnsignedLong(offset), "no register at this offset");
                return (long) TransportStatus.BAD_OFFSET << 32;
            }
        }
        return Integer.toUnsignedLong(value);
    }

    private int write(int offset, int value) {
        return switch (offset) {
            case DEVICE_FEATURES_SEL_OFFSET -> {
                deviceFeaturesSel = value;
                yield TransportStatus.OK;
            }
            case DRIVER_FEATURES_SEL_OFFSET -> {
                driverFeaturesSel = value;
                yield TransportStatus.OK;
            }
            case DRIVER_FEATURES_OFFSET -> core.writeDriverFeaturesWord(driverFeaturesSel, value);
            case QUEUE_SEL_OFFSET -> {
                queueSel = value;
                yield TransportStatus.OK;
            }
            case QUEUE_NUM_OFFSET, QUEUE_DESC_LOW_OFFSET, QUEUE_DESC_HIGH_OFFSET, QUEUE_DRIVER_LOW_OFFSET,
                 QUEUE_DRIVER_HIGH_OFFSET, QUEUE_DEVICE_LOW_OFFSET, QUEUE_DEVICE_HIGH_OFFSET -> stageQueue(offset, value);
            case QUEUE_READY_OFFSET -> writeQueueReady(value);
            case QUEUE_NOTIFY_OFFSET -> core.queueNotified(value);
            case INTERRUPT_ACK_OFFSET -> {
                core.ackInterrupt(value);
                yield TransportStatus.OK;
            }
            case STATUS_OFFSET -> core.writeStatus(value);
            case SHM_SEL_OFFSET -> TransportStatus.OK;
            case MAGIC_VALUE_OFFSET, VERSION_OFFSET, DEVICE_ID_OFFSET, VENDOR_ID_OFFSET, DEVICE_FEATURES_OFFSET,
                 QUEUE_NUM_MAX_OFFSET, INTERRUPT_STATUS_OFFSET, CONFIG_GENERATION_OFFSET, SHM_LEN_LOW_OFFSET,
                 SHM_LEN_HIGH_OFFSET, SHM_BASE_LOW_OFFSET, SHM_BASE_HIGH_OFFSET -> {
                core.refuse("register[0x" + Integer.toHexString(offset) + "]", Integer.toUnsignedLong(value),
                        "write to a read-only register, ignored");
                yield TransportStatus.READ_ONLY;
            }
            default -> {
                core.refuse("register", Integer.toUnsignedLong(offset), "no register at this offset");
                yield TransportStatus.BAD_OFFSET;
            }
        };
    }

    private int stageQueue(int offset, int value) {
        int q = queueSel;
        if (q < 0 || q >= core.queueCount()) {
            core.refuse("queue_sel", Integer.toUnsignedLong(q), "queue register written for a queue that does not exist");
            return TransportStatus.REJECTED;
        }
        if (core.queueReady(q)) {
            core.refuse("register[0x" + Integer.toHexString(offset) + "]", Integer.toUnsignedLong(value),
                    "queue " + q + " is ready; its registers are fixed until reset (§4.2.2.2)");
            return TransportStatus.REJECTED;
        }
        long v = Integer.toUnsignedLong(value);
        switch (offset) {
            case QUEUE_NUM_OFFSET -> {
                if (value <= 0 || value > core.model().maxQueueSize(q)) {
                    core.refuse("queue_num", v, "above QueueNumMax " + core.model().maxQueueSize(q) + " or zero");
                    return TransportStatus.REJECTED;
                }
                queueNum[q] = value;
            }
            case QUEUE_DESC_LOW_OFFSET -> descAddr[q] = (descAddr[q] & ~0xffff_ffffL) | v;
            case QUEUE_DESC_HIGH_OFFSET -> descAddr[q] = (descAddr[q] & 0xffff_ffffL) | v << 32;
            case QUEUE_DRIVER_LOW_OFFSET -> driverAddr[q] = (driverAddr[q] & ~0xffff_ffffL) | v;
            case QUEUE_DRIVER_HIGH_OFFSET -> driverAddr[q] = (driverAddr[q] & 0xffff_ffffL) | v << 32;
            case QUEUE_DEVICE_LOW_OFFSET -> deviceAddr[q] = (deviceAddr[q] & ~0xffff_ffffL) | v;
            default -> deviceAddr[q] = (deviceAddr[q] & 0xffff_ffffL) | v << 32;
        }
        return TransportStatus.OK;
    }

    private int writeQueueReady(int value) {
        int q = queueSel;
        if (value == 0) {
            if (core.queueReady(q)) {
                core.refuse("queue_ready", 0, "disabling a ready queue needs VIRTIO_F_RING_RESET (not offered); reset the device");
                return TransportStatus.REJECTED;
            }
            return TransportStatus.OK;
        }
        if (value != 1) {
            core.refuse("queue_ready", Integer.toUnsignedLong(value), "QueueReady takes 0 or 1");
            return TransportStatus.REJECTED;
        }
        if (q < 0 || q >= core.queueCount()) {
            core.refuse("queue_sel", Integer.toUnsignedLong(q), "QueueReady for a queue that does not exist");
            return TransportStatus.REJECTED;
        }
        return core.enableQueue(q, queueNum[q], descAddr[q], driverAddr[q], deviceAddr[q]);
    }

    @Override
    public void stateChanged() {
        // Registers are read on demand; nothing to publish.
    }

    @Override
    public void reset() {
        deviceFeaturesSel = 0;
        driverFeaturesSel = 0;
        queueSel = 0;
        java.util.Arrays.fill(queueNum, 0);
        java.util.Arrays.fill(descAddr, 0);
        java.util.Arrays.fill(driverAddr, 0);
        java.util.Arrays.fill(deviceAddr, 0);
    }
}
