package dev.airlock.transport;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.SendResult;
import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.VmContext;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.locks.ReentrantLock;

import static dev.airlock.transport.MmioRegisters.*;

/**
 * The driver side of msgq-mmio: each register access is a request message and a wait for its
 * response, one outstanding per device (the Linux {@code mmio_ops} option of the seed).
 */
final class MmioDriverTransport extends DriverSlot {
    private final ReentrantLock accessLock = new ReentrantLock();
    private final MemorySegment sendBuffer = Arena.ofAuto().allocate(MmioMessageLayout.REQUEST_LENGTH, 8);
    private int seq;
    /** Guarded by {@link #answered}. */
    private int pendingSeq = -1;
    /** Guarded by {@link #answered}: the response type the outstanding request expects. */
    private int pendingType;
    private MmioMessageLayout.Response answer;
    /** Set when a new backend attached, until its first answer other than NO_SUCH_SLOT. */
    private volatile boolean resync;

    MmioDriverTransport(DriverHost host, VmContext vm, SharedRegionMapping region, int slot, long timeoutNs) {
        super(host, vm, region, slot, timeoutNs);
    }

    @Override
    public TransportKind kind() {
        return TransportKind.MSGQ_MMIO;
    }

    @Override
    public long dmaOffset() {
        return 0;
    }

    /** A response for this slot, on the interrupt thread; returns false if it answers nothing outstanding. */
    boolean onResponse(MmioMessageLayout.Response response) {
        synchronized (answered) {
            if (response.seq() != pendingSeq || response.type() != pendingType || answer != null) {
                return false;
            }
            answer = response;
            answered.notifyAll();
            return true;
        }
    }

    @Override
    void onDetached() {
        synchronized (answered) {
            pendingSeq = -1; // a late answer of the old device is stale
            answer = null;
        }
    }

    @Override
    void onReattached() {
        resync = true;
    }

    /**
     * Performs one access and returns the device's answer. The first access after a new backend
     * attached is repeated, at growing intervals up to the timeout, while the answer is
     * {@link TransportStatus#NO_SUCH_SLOT}: the new backend may be answering before it has added
     * this device.
     */
    private MmioMessageLayout.Response access(int type, int offset, int sizeBytes, int value) {
        accessLock.lock();
        try {
            int session = begin();
            String what = (type == MmioMessageLayout.TYPE_READ ? "read" : "write") + " of 0x" + Integer.toHexString(offset);
            MmioMessageLayout.Response r = exchange(new MmioMessageLayout.Request(type, slot, 0, offset, sizeBytes, value), what,
                    session);
            if (resync) {
                long deadline = System.nanoTime() + timeoutNs;
                long backoffNs = 5_000_000;
                while (r.status() == TransportStatus.NO_SUCH_SLOT && System.nanoTime() - deadline < 0) {
                    awaitUntil(() -> false, System.nanoTime() + backoffNs, what, session); // a pause that a detach ends
                    backoffNs = Math.min(2 * backoffNs, 200_000_000);
                    r = exchange(new MmioMessageLayout.Request(type, slot, 0, offset, sizeBytes, value), what, session);
                }
                resync = false;
            }
            return r;
        } finally {
            accessLock.unlock();
        }
    }

    /** Sends one request (with the next sequence number) and waits for its answer. */
    private MmioMessageLayout.Response exchange(MmioMessageLayout.Request request, String what, int session) {
        seq = (seq + 1) & 0xffff;
        int s = seq;
        synchronized (answered) {
            pendingSeq = s;
            pendingType = request.isWrite() ? MmioMessageLayout.TYPE_WRITE_RESPONSE : MmioMessageLayout.TYPE_READ_RESPONSE;
            answer = null;
        }
        MmioMessageLayout.encodeRequest(sendBuffer, new MmioMessageLayout.Request(request.type(), slot, s, request.offset(),
                request.sizeBytes(), request.value()));
        send(what);
        await(() -> answer != null, what, session);
        synchronized (answered) {
            MmioMessageLayout.Response r = answer;
            pendingSeq = -1;
            answer = null;
            if (r == null) { // the backend detached between the answer and here
                throw new TransportException(name + ": the device's backend went away during " + what);
            }
            return r;
        }
    }

    private void send(String what) {
        long deadline = System.nanoTime() + timeoutNs;
        try {
            while (vm.sendMessage(peer, sendBuffer) == SendResult.FULL) {
                if (System.nanoTime() - deadline > 0) {
                    markBroken("message queue full for " + timeoutNs / 1_000_000 + " ms sending " + what);
                    checkNotBroken();
                }
                Thread.onSpinWait();
            }
        } catch (HypervisorRefusedException e) {
            markBroken("device VM unreachable: " + e.getMessage());
            checkNotBroken();
        }
    }

    /** A raw 32-bit register read (for tests and diagnostics); returns {@code status << 32 | value}. */
    long readRegister(int offset) {
        MmioMessageLayout.Response r = access(MmioMessageLayout.TYPE_READ, offset, 4, 0);
        return (long) r.status() << 32 | Integer.toUnsignedLong(r.value());
    }

    /** A raw 32-bit register write (for tests and diagnostics); returns the status code. */
    int writeRegister(int offset, int value) {
        return write(offset, value);
    }

    private int read(int offset) {
        MmioMessageLayout.Response r = access(MmioMessageLayout.TYPE_READ, offset, 4, 0);
        if (r.status() != TransportStatus.OK) {
            throw new TransportException(name + ": read of register 0x" + Integer.toHexString(offset) + " answered "
                    + TransportStatus.describe(r.status()));
        }
        return r.value();
    }

    /** Writes a register; returns the status code. */
    private int write(int offset, int value) {
        return access(MmioMessageLayout.TYPE_WRITE, offset, 4, value).status();
    }

    private void writeOk(int offset, int value) {
        int status = write(offset, value);
        if (status != TransportStatus.OK) {
            throw new TransportException(name + ": write of register 0x" + Integer.toHexString(offset) + " answered "
                    + TransportStatus.describe(status));
        }
    }

    @Override
    public int probe() {
        int magic = read(MAGIC_VALUE_OFFSET);
        int version = read(VERSION_OFFSET);
        if (magic != MAGIC_VALUE || version != VERSION) {
            throw new TransportException(name + ": not a virtio-mmio version 2 device (magic 0x" + Integer.toHexString(magic)
                    + ", version " + version + ")");
        }
        return read(DEVICE_ID_OFFSET);
    }

    @Override
    public long deviceFeatures() {
        writeOk(DEVICE_FEATURES_SEL_OFFSET, 0);
        long low = Integer.toUnsignedLong(read(DEVICE_FEATURES_OFFSET));
        writeOk(DEVICE_FEATURES_SEL_OFFSET, 1);
        long high = Integer.toUnsignedLong(read(DEVICE_FEATURES_OFFSET));
        return high << 32 | low;
    }

    @Override
    public void writeDriverFeatures(long features) {
        writeOk(DRIVER_FEATURES_SEL_OFFSET, 0);
        writeOk(DRIVER_FEATURES_OFFSET, (int) features);
        writeOk(DRIVER_FEATURES_SEL_OFFSET, 1);
        writeOk(DRIVER_FEATURES_OFFSET, (int) (features >>> 32));
    }

    @Override
    public int status() {
        return read(STATUS_OFFSET) & 0xff;
    }

    @Override
    public void writeStatus(int status) {
        write(STATUS_OFFSET, status); // a refusal shows when the status is re-read
    }

    @Override
    public int queueNumMax(int queue) {
        writeOk(QUEUE_SEL_OFFSET, queue);
        return read(QUEUE_NUM_MAX_OFFSET);
    }

    @Override
    public boolean enableQueue(int queue, int size, long descAddr, long availAddr, long usedAddr) {
        writeOk(QUEUE_SEL_OFFSET, queue);
        if (read(QUEUE_READY_OFFSET) != 0) {
            return false; // §4.2.3.2: the queue must not be in use
        }
        int[][] writes = {
                {QUEUE_NUM_OFFSET, size},
                {QUEUE_DESC_LOW_OFFSET, (int) descAddr}, {QUEUE_DESC_HIGH_OFFSET, (int) (descAddr >>> 32)},
                {QUEUE_DRIVER_LOW_OFFSET, (int) availAddr}, {QUEUE_DRIVER_HIGH_OFFSET, (int) (availAddr >>> 32)},
                {QUEUE_DEVICE_LOW_OFFSET, (int) usedAddr}, {QUEUE_DEVICE_HIGH_OFFSET, (int) (usedAddr >>> 32)},
                {QUEUE_READY_OFFSET, 1}};
        for (int[] w : writes) {
            if (write(w[0], w[1]) != TransportStatus.OK) {
                return false;
            }
        }
        return read(QUEUE_READY_OFFSET) == 1;
    }

    @Override
    public int configGeneration() {
        return read(CONFIG_GENERATION_OFFSET);
    }

    @Override
    public long readConfig(int offset, int sizeBytes) {
        checkConfigAccess(offset, sizeBytes);
        MmioMessageLayout.Response r = access(MmioMessageLayout.TYPE_READ, CONFIG_OFFSET + offset, sizeBytes, 0);
        if (r.status() != TransportStatus.OK) {
            throw new TransportException(name + ": config read at " + offset + " answered " + TransportStatus.describe(r.status()));
        }
        return sizeBytes == 4 ? Integer.toUnsignedLong(r.value()) : r.value() & ((1L << (8 * sizeBytes)) - 1);
    }

    @Override
    public void writeConfig(int offset, int sizeBytes, long value) {
        checkConfigAccess(offset, sizeBytes);
        int status = access(MmioMessageLayout.TYPE_WRITE, CONFIG_OFFSET + offset, sizeBytes, (int) value).status();
        if (status != TransportStatus.OK) {
            throw new TransportException(name + ": config write at " + offset + " answered " + TransportStatus.describe(status));
        }
    }
}
