package dev.airlock.transport;

import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioProtocolException;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

/**
 * The msgq-mmio messages: one register access of VIRTIO 1.2 §4.2.2 per request, answered by one
 * response, both 16 bytes, little-endian, on the message queue of the primary/secondary pair.
 *
 * <pre>
 *  request (driver -> device)            response (device -> driver)
 *   0       1       2               4     0       1       2               4
 *  +-------+-------+---------------+     +-------+-------+---------------+
 *  | type  | slot  |      seq      |     | type  | slot  |      seq      |  type 0x81/0x82, slot and seq copied
 *  +-------+-------+---------------+     +-------+-------+---------------+
 *  |        register offset        |     |            status             |  TransportStatus code
 *  +-------+-----------------------+     +-------------------------------+
 *  | size  |  reserved (zero)      |     |             value             |  the read value; 0 for writes
 *  +-------+-----------------------+     +-------------------------------+
 *  |             value             |     |        reserved (zero)        |
 *  +-------------------------------+     +-------------------------------+
 *  type 1 READ (value zero), 2 WRITE; size 1, 2 or 4 bytes, offset aligned to it
 * </pre>
 *
 * <table>
 *   <caption>Who writes and who reads</caption>
 *   <tr><th>message</th><th>written by</th><th>read by</th></tr>
 *   <tr><td>request</td><td>the driver, one outstanding per slot</td><td>the device host, decoded once by
 *       {@link #decodeRequest}; any other length, type, size, alignment or reserved bits is MALFORMED</td></tr>
 *   <tr><td>response</td><td>the device host</td><td>the driver host, decoded once by {@link #decodeResponse};
 *       a response that matches no outstanding request is dropped</td></tr>
 * </table>
 * The slot multiplexes up to {@link DoorbellFlagsLayout#MAX_SLOTS} devices over one message queue;
 * the sequence number pairs a response with its request and exposes stale answers after a timeout.
 */
public final class MmioMessageLayout {
    /** Byte order of every field. */
    public static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfByte U8 = ValueLayout.JAVA_BYTE;
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ORDER);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ORDER);

    /** The request layout. */
    public static final StructLayout REQUEST_LAYOUT = MemoryLayout.structLayout(
            U8.withName("type"), U8.withName("slot"), U16.withName("seq"), U32.withName("offset"),
            U8.withName("size"), MemoryLayout.sequenceLayout(3, U8).withName("reserved"), U32.withName("value"));
    /** The response layout. */
    public static final StructLayout RESPONSE_LAYOUT = MemoryLayout.structLayout(
            U8.withName("type"), U8.withName("slot"), U16.withName("seq"), U32.withName("status"),
            U32.withName("value"), U32.withName("reserved"));

    /** Length of a request. */
    public static final int REQUEST_LENGTH = (int) REQUEST_LAYOUT.byteSize();
    /** Length of a response. */
    public static final int RESPONSE_LENGTH = (int) RESPONSE_LAYOUT.byteSize();
    /** Offset of the type (both messages). */
    public static final long TYPE_OFFSET = REQUEST_LAYOUT.byteOffset(groupElement("type"));
    /** Offset of the slot (both messages). */
    public static final long SLOT_OFFSET = REQUEST_LAYOUT.byteOffset(groupElement("slot"));
    /** Offset of the sequence number (both messages). */
    public static final long SEQ_OFFSET = REQUEST_LAYOUT.byteOffset(groupElement("seq"));
    /** Offset of the register offset in a request. */
    public static final long REGISTER_OFFSET_OFFSET = REQUEST_LAYOUT.byteOffset(groupElement("offset"));
    /** Offset of the access size in a request. */
    public static final long SIZE_OFFSET = REQUEST_LAYOUT.byteOffset(groupElement("size"));
    /** Offset of the reserved bytes in a request. */
    public static final long REQUEST_RESERVED_OFFSET = REQUEST_LAYOUT.byteOffset(groupElement("reserved"));
    /** Offset of the value in a request. */
    public static final long REQUEST_VALUE_OFFSET = REQUEST_LAYOUT.byteOffset(groupElement("value"));
    /** Offset of the status in a response. */
    public static final long STATUS_OFFSET = RESPONSE_LAYOUT.byteOffset(groupElement("status"));
    /** Offset of the value in a response. */
    public static final long RESPONSE_VALUE_OFFSET = RESPONSE_LAYOUT.byteOffset(groupElement("value"));
    /** Offset of the reserved word in a response. */
    public static final long RESPONSE_RESERVED_OFFSET = RESPONSE_LAYOUT.byteOffset(groupElement("reserved"));

    /** Request type: read a register. */
    public static final int TYPE_READ = 1;
    /** Request type: write a register. */
    public static final int TYPE_WRITE = 2;
    /** Response type: answer to a read. */
    public static final int TYPE_READ_RESPONSE = 0x81;
    /** Response type: answer to a write. */
    public static final int TYPE_WRITE_RESPONSE = 0x82;

    static {
        if (REQUEST_LENGTH != 16 || RESPONSE_LENGTH != 16 || REQUEST_VALUE_OFFSET != 12 || RESPONSE_VALUE_OFFSET != 8) {
            throw new ExceptionInInitializerError("msgq-mmio message layout drifted from its diagram");
        }
    }

    private MmioMessageLayout() {
    }

    /**
     * A decoded, validated request.
     *
     * @param type      {@link #TYPE_READ} or {@link #TYPE_WRITE}
     * @param slot      the device slot, 0 to 255 (checked by the host)
     * @param seq       the sequence number, 0 to 65535
     * @param offset    the register offset (unsigned; checked by the register file)
     * @param sizeBytes 1, 2 or 4, with {@code offset} aligned to it
     * @param value     the value to write; 0 for reads
     */
    public record Request(int type, int slot, int seq, int offset, int sizeBytes, int value) {
        /**
         * Whether this is a write.
         *
         * @return true for {@link #TYPE_WRITE}
         */
        public boolean isWrite() {
            return type == TYPE_WRITE;
        }
    }

    /**
     * A decoded, validated response.
     *
     * @param type   {@link #TYPE_READ_RESPONSE} or {@link #TYPE_WRITE_RESPONSE}
     * @param slot   the device slot
     * @param seq    the sequence number of the request it answers
     * @param status a {@link TransportStatus} code
     * @param value  the value read
     */
    public record Response(int type, int slot, int seq, int status, int value) {
    }

    /**
     * Encodes a request.
     *
     * @param dst     at least {@link #REQUEST_LENGTH} bytes
     * @param request the request
     */
    public static void encodeRequest(MemorySegment dst, Request request) {
        dst.asSlice(0, REQUEST_LENGTH).fill((byte) 0);
        dst.set(U8, TYPE_OFFSET, (byte) request.type());
        dst.set(U8, SLOT_OFFSET, (byte) request.slot());
        dst.set(U16, SEQ_OFFSET, (short) request.seq());
        dst.set(U32, REGISTER_OFFSET_OFFSET, request.offset());
        dst.set(U8, SIZE_OFFSET, (byte) request.sizeBytes());
        dst.set(U32, REQUEST_VALUE_OFFSET, request.value());
    }

    /**
     * Encodes a response.
     *
     * @param dst      at least {@link #RESPONSE_LENGTH} bytes
     * @param response the response
     */
    public static void encodeResponse(MemorySegment dst, Response response) {
        dst.set(U8, TYPE_OFFSET, (byte) response.type());
        dst.set(U8, SLOT_OFFSET, (byte) response.slot());
        dst.set(U16, SEQ_OFFSET, (short) response.seq());
        dst.set(U32, STATUS_OFFSET, response.status());
        dst.set(U32, RESPONSE_VALUE_OFFSET, response.value());
        dst.set(U32, RESPONSE_RESERVED_OFFSET, 0);
    }

    /**
     * Decodes and validates a request received from a driver: exact length, known type, size 1, 2
     * or 4, offset aligned to the size, reserved bytes zero, and a zero value for reads.
     *
     * @param src         the received bytes
     * @param lengthBytes the message length
     * @param source      who sent it, for the fault record
     * @return the request
     * @throws VirtioProtocolException if the message is malformed
     */
    public static Request decodeRequest(MemorySegment src, int lengthBytes, String source) {
        if (lengthBytes != REQUEST_LENGTH) {
            throw malformed(source, "msg.length", lengthBytes, "a request is exactly " + REQUEST_LENGTH + " bytes");
        }
        int type = src.get(U8, TYPE_OFFSET) & 0xff;
        int slot = src.get(U8, SLOT_OFFSET) & 0xff;
        int seq = src.get(U16, SEQ_OFFSET) & 0xffff;
        int offset = src.get(U32, REGISTER_OFFSET_OFFSET);
        int size = src.get(U8, SIZE_OFFSET) & 0xff;
        int reserved = (src.get(U8, REQUEST_RESERVED_OFFSET) & 0xff) | (src.get(U8, REQUEST_RESERVED_OFFSET + 1) & 0xff)
                | (src.get(U8, REQUEST_RESERVED_OFFSET + 2) & 0xff);
        int value = src.get(U32, REQUEST_VALUE_OFFSET);
        if (type != TYPE_READ && type != TYPE_WRITE) {
            throw malformed(source, "msg.type", type, "not READ (1) or WRITE (2)");
        }
        if (reserved != 0) {
            throw malformed(source, "msg.reserved", reserved, "reserved bytes must be zero");
        }
        if (size != 1 && size != 2 && size != 4) {
            throw malformed(source, "msg.size", size, "an access is 1, 2 or 4 bytes");
        }
        if ((offset & (size - 1)) != 0) {
            throw malformed(source, "msg.offset", Integer.toUnsignedLong(offset), "not aligned to the access size " + size);
        }
        if (type == TYPE_READ && value != 0) {
            throw malformed(source, "msg.value", Integer.toUnsignedLong(value), "a read carries no value");
        }
        return new Request(type, slot, seq, offset, size, value);
    }

    /**
     * Decodes and validates a response received from a device: exact length, known type, reserved
     * word zero. Whether it answers an outstanding request is the caller's check.
     *
     * @param src         the received bytes
     * @param lengthBytes the message length
     * @param source      who sent it, for the fault record
     * @return the response
     * @throws VirtioProtocolException if the message is malformed
     */
    public static Response decodeResponse(MemorySegment src, int lengthBytes, String source) {
        if (lengthBytes != RESPONSE_LENGTH) {
            throw malformed(source, "msg.length", lengthBytes, "a response is exactly " + RESPONSE_LENGTH + " bytes");
        }
        int type = src.get(U8, TYPE_OFFSET) & 0xff;
        int reserved = src.get(U32, RESPONSE_RESERVED_OFFSET);
        if (type != TYPE_READ_RESPONSE && type != TYPE_WRITE_RESPONSE) {
            throw malformed(source, "msg.type", type, "not a response type");
        }
        if (reserved != 0) {
            throw malformed(source, "msg.reserved", Integer.toUnsignedLong(reserved), "reserved word must be zero");
        }
        return new Response(type, src.get(U8, SLOT_OFFSET) & 0xff, src.get(U16, SEQ_OFFSET) & 0xffff,
                src.get(U32, STATUS_OFFSET), src.get(U32, RESPONSE_VALUE_OFFSET));
    }

    /**
     * Reads the slot and sequence number of a message too malformed to decode, to address an error
     * response; -1 if the message is shorter than 4 bytes.
     *
     * @param src         the received bytes
     * @param lengthBytes the message length
     * @return {@code slot << 16 | seq}, or -1
     */
    public static int peekSlotAndSeq(MemorySegment src, int lengthBytes) {
        if (lengthBytes < 4) {
            return -1;
        }
        return (src.get(U8, SLOT_OFFSET) & 0xff) << 16 | (src.get(U16, SEQ_OFFSET) & 0xffff);
    }

    private static VirtioProtocolException malformed(String source, String field, long value, String reason) {
        return new VirtioProtocolException(new VirtioFault(source, field, value, reason));
    }
}
