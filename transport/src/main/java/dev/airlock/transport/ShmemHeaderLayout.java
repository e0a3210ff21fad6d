package dev.airlock.transport;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

/**
 * The shmem-doorbell header: the first {@link #HEADER_LENGTH} bytes of a device's shared region,
 * in place of the virtio-mmio registers (after the ivshmem2-virtio proposal). The rest of the region
 * holds the vrings and the bounce pool; the device's DMA view excludes the header, so no ring or
 * buffer can overlap it. Little-endian, naturally aligned (the region is page aligned).
 *
 * <pre>
 *  0x000 +-----------------+-----------------+-----------------+-----------------+
 *        | magic "ASHM"    | version (1)     | device_id       | vendor_id       |   device, at set-up
 *  0x010 +-----------------+-----------------+-----------------+-----------------+
 *        | device_features (u64)             | queue_count     | config_size     |   device, at set-up
 *  0x020 +-----------------+-----------------+-----------------+-----------------+
 *        | status          | config_gen      | reserved ...                      |   device
 *  0x040 +-----------------+-----------------+-----------------+-----------------+   driver's line
 *        | request_seq     | op              | arg0            | arg1            |
 *  0x050 +-----------------+-----------------+-----------------+-----------------+
 *        | arg2 (u64)                        | arg3 (u64)                        |
 *  0x060 +-----------------+-----------------+-----------------+-----------------+
 *        | arg4 (u64)                        | reserved ...                      |
 *  0x080 +-----------------+-----------------+-----------------+-----------------+   device's line
 *        | ack_seq         | result          | reserved ...                      |
 *  0x100 +-----------------+-----------------+-----------------+-----------------+   queue table,
 *        | num_max         | size (0: off)   | desc (u64)                        |   32 bytes per queue,
 *        | driver (u64)                      | device (u64)                      |   7 queues, device
 *  0x800 +-----------------+-----------------+-----------------+-----------------+
 *        | device-specific configuration space, {@value #CONFIG_LENGTH} bytes                 |   device
 * 0x1000 +-----------------------------------------------------------------------+
 * </pre>
 *
 * <table>
 *   <caption>Who writes and who reads</caption>
 *   <tr><th>field</th><th>writer</th><th>reader</th><th>access</th></tr>
 *   <tr><td>magic .. config_size</td><td>device, before the driver starts</td><td>driver</td><td>plain; the driver validates</td></tr>
 *   <tr><td>status, queue table</td><td>device, after each request</td><td>driver</td><td>plain, published by ack_seq</td></tr>
 *   <tr><td>config_gen, config space</td><td>device</td><td>driver</td><td>seqlock: config_gen odd while the
 *       device rewrites the space; setRelease of the even value, the driver reads config_gen with getAcquire
 *       before and after (loadLoadFence) and retries on a change</td></tr>
 *   <tr><td>op, arg0 .. arg4</td><td>driver</td><td>device</td><td>plain, published by request_seq; the device reads
 *       each once into a record and validates the copy</td></tr>
 *   <tr><td>request_seq</td><td>driver</td><td>device</td><td>setRelease / getAcquire</td></tr>
 *   <tr><td>ack_seq, result</td><td>device</td><td>driver</td><td>result plain, ack_seq setRelease / getAcquire</td></tr>
 * </table>
 *
 * <p>The handshake: the driver writes op and args, stores request_seq + 1 with release, and rings
 * {@link DoorbellFlagsLayout#CONTROL_BIT} of its slot. The device (on the doorbell) reads
 * request_seq with acquire, copies the request once, validates and applies it, republishes status,
 * queue table and configuration, writes result, stores ack_seq = request_seq with release, and rings
 * {@link DoorbellFlagsLayout#CONTROL_ACK_BIT}. One request is outstanding per device. Every field
 * the driver wrote is hostile: the device never reads a device-owned field back.
 */
public final class ShmemHeaderLayout {
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** 32-bit field access: (MemorySegment header, long offset). */
    static final VarHandle U32_HANDLE = U32.varHandle();

    /** One queue table entry. */
    public static final StructLayout QUEUE_ENTRY_LAYOUT = MemoryLayout.structLayout(
            U32.withName("num_max"), U32.withName("size"), U64.withName("desc"), U64.withName("driver"),
            U64.withName("device"));
    /** The whole header, as in the diagram. */
    public static final StructLayout HEADER_LAYOUT = MemoryLayout.structLayout(
            U32.withName("magic"), U32.withName("version"), U32.withName("device_id"), U32.withName("vendor_id"),
            U64.withName("device_features"), U32.withName("queue_count"), U32.withName("config_size"),
            U32.withName("status"), U32.withName("config_gen"), MemoryLayout.paddingLayout(0x18),
            U32.withName("request_seq"), U32.withName("op"), U32.withName("arg0"), U32.withName("arg1"),
            U64.withName("arg2"), U64.withName("arg3"), U64.withName("arg4"), MemoryLayout.paddingLayout(0x18),
            U32.withName("ack_seq"), U32.withName("result"), MemoryLayout.paddingLayout(0x78),
            MemoryLayout.sequenceLayout(DoorbellFlagsLayout.MAX_QUEUES, QUEUE_ENTRY_LAYOUT).withName("queues"),
            MemoryLayout.paddingLayout(0x800 - 0x100 - DoorbellFlagsLayout.MAX_QUEUES * 32L),
            MemoryLayout.sequenceLayout(2048, ValueLayout.JAVA_BYTE).withName("config"));

    /** The header's length; the pool starts after it. */
    public static final int HEADER_LENGTH = (int) HEADER_LAYOUT.byteSize();
    /** The header's alignment in the region. */
    public static final int HEADER_ALIGNMENT = 4096;
    /** magic. */
    public static final long MAGIC_OFFSET = offset("magic");
    /** version. */
    public static final long VERSION_OFFSET = offset("version");
    /** device_id. */
    public static final long DEVICE_ID_OFFSET = offset("device_id");
    /** vendor_id. */
    public static final long VENDOR_ID_OFFSET = offset("vendor_id");
    /** device_features. */
    public static final long DEVICE_FEATURES_OFFSET = offset("device_features");
    /** queue_count. */
    public static final long QUEUE_COUNT_OFFSET = offset("queue_count");
    /** config_size. */
    public static final long CONFIG_SIZE_OFFSET = offset("config_size");
    /** status. */
    public static final long STATUS_OFFSET = offset("status");
    /** config_gen. */
    public static final long CONFIG_GENERATION_OFFSET = offset("config_gen");
    /** request_seq. */
    public static final long REQUEST_SEQ_OFFSET = offset("request_seq");
    /** op. */
    public static final long OP_OFFSET = offset("op");
    /** arg0. */
    public static final long ARG0_OFFSET = offset("arg0");
    /** arg1. */
    public static final long ARG1_OFFSET = offset("arg1");
    /** arg2. */
    public static final long ARG2_OFFSET = offset("arg2");
    /** arg3. */
    public static final long ARG3_OFFSET = offset("arg3");
    /** arg4. */
    public static final long ARG4_OFFSET = offset("arg4");
    /** ack_seq. */
    public static final long ACK_SEQ_OFFSET = offset("ack_seq");
    /** result. */
    public static final long RESULT_OFFSET = offset("result");
    /** The queue table. */
    public static final long QUEUE_TABLE_OFFSET = offset("queues");
    /** One queue table entry. */
    public static final long QUEUE_ENTRY_LENGTH = QUEUE_ENTRY_LAYOUT.byteSize();
    /** num_max within an entry. */
    public static final long QUEUE_NUM_MAX_OFFSET = QUEUE_ENTRY_LAYOUT.byteOffset(groupElement("num_max"));
    /** size within an entry. */
    public static final long QUEUE_SIZE_OFFSET = QUEUE_ENTRY_LAYOUT.byteOffset(groupElement("size"));
    /** desc within an entry. */
    public static final long QUEUE_DESC_OFFSET = QUEUE_ENTRY_LAYOUT.byteOffset(groupElement("desc"));
    /** driver (avail ring) within an entry. */
    public static final long QUEUE_DRIVER_OFFSET = QUEUE_ENTRY_LAYOUT.byteOffset(groupElement("driver"));
    /** device (used ring) within an entry. */
    public static final long QUEUE_DEVICE_OFFSET = QUEUE_ENTRY_LAYOUT.byteOffset(groupElement("device"));
    /** The configuration space. */
    public static final long CONFIG_OFFSET = offset("config");
    /** The most configuration space a device may have on any transport. */
    public static final int CONFIG_LENGTH = 2048;
    /** The value of magic: "ASHM" in little-endian. */
    public static final int MAGIC = 0x4d485341;
    /** The value of version. */
    public static final int VERSION = 1;

    /** op: write the status (arg0); other args zero. */
    public static final int OP_WRITE_STATUS = 1;
    /** op: write all 64 driver feature bits (arg2); other args zero. */
    public static final int OP_WRITE_FEATURES = 2;
    /** op: enable queue arg0 with size arg1 and rings at arg2 (desc), arg3 (driver), arg4 (device). */
    public static final int OP_ENABLE_QUEUE = 3;
    /** op: write arg1 (1, 2 or 4) bytes of configuration at offset arg0 with the value arg2; others zero. */
    public static final int OP_WRITE_CONFIG = 4;

    static {
        if (HEADER_LENGTH != 4096 || STATUS_OFFSET != 0x20 || REQUEST_SEQ_OFFSET != 0x40 || ACK_SEQ_OFFSET != 0x80
                || QUEUE_TABLE_OFFSET != 0x100 || QUEUE_ENTRY_LENGTH != 32 || CONFIG_OFFSET != 0x800
                || CONFIG_OFFSET + CONFIG_LENGTH != HEADER_LENGTH) {
            throw new ExceptionInInitializerError("shmem header layout drifted from its diagram");
        }
    }

    private ShmemHeaderLayout() {
    }

    private static long offset(String field) {
        return HEADER_LAYOUT.byteOffset(groupElement(field));
    }

    /**
     * Offset of a queue's table entry.
     *
     * @param queue 0 to {@link DoorbellFlagsLayout#MAX_QUEUES} - 1
     * @return the offset in the header
     */
    public static long queueEntryOffset(int queue) {
        return QUEUE_TABLE_OFFSET + queue * QUEUE_ENTRY_LENGTH;
    }

    /**
     * Checks that a segment can hold a header.
     *
     * @param header the segment
     * @return the first {@link #HEADER_LENGTH} bytes
     * @throws IllegalArgumentException if it is too short or misaligned
     */
    static MemorySegment check(MemorySegment header) {
        if (header.byteSize() < HEADER_LENGTH || (header.address() & (HEADER_ALIGNMENT - 1)) != 0) {
            throw new IllegalArgumentException("a shmem-doorbell header needs " + HEADER_LENGTH + " page-aligned bytes");
        }
        return header.asSlice(0, HEADER_LENGTH);
    }

    static int getInt(MemorySegment header, long offset) {
        return header.get(U32, offset);
    }

    static void setInt(MemorySegment header, long offset, int value) {
        header.set(U32, offset, value);
    }

    static long getLong(MemorySegment header, long offset) {
        return header.get(U64, offset);
    }

    static void setLong(MemorySegment header, long offset, long value) {
        header.set(U64, offset, value);
    }

    static int getIntAcquire(MemorySegment header, long offset) {
        return (int) U32_HANDLE.getAcquire(header, offset);
    }

    static void setIntRelease(MemorySegment header, long offset, int value) {
        U32_HANDLE.setRelease(header, offset, value);
    }
}
