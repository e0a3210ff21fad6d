package dev.airlock.transport;

import dev.airlock.virtio.VirtioProtocolException;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class MmioMessageLayoutTest {
    private static MemorySegment encode(MmioMessageLayout.Request r) {
        MemorySegment s = MemorySegment.ofArray(new byte[MmioMessageLayout.REQUEST_LENGTH]);
        MmioMessageLayout.encodeRequest(s, r);
        return s;
    }

    @Test
    void shouldRoundTripRequestsAndResponsesLittleEndian() {
        MmioMessageLayout.Request r = new MmioMessageLayout.Request(MmioMessageLayout.TYPE_WRITE, 7, 0xfffe, 0x104, 2, 0xbeef);
        MemorySegment s = encode(r);
        assertEquals(r, MmioMessageLayout.decodeRequest(s, 16, "t"));
        assertEquals((byte) 0xfe, s.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 2), "seq low byte first");
        MmioMessageLayout.Response a = new MmioMessageLayout.Response(MmioMessageLayout.TYPE_READ_RESPONSE, 7, 0xfffe, 5, -1);
        MemorySegment b = MemorySegment.ofArray(new byte[16]);
        MmioMessageLayout.encodeResponse(b, a);
        assertEquals(a, MmioMessageLayout.decodeResponse(b, 16, "t"));
    }

    @Test
    void rejectsEachMalformation() {
        MemorySegment good = encode(new MmioMessageLayout.Request(MmioMessageLayout.TYPE_READ, 0, 1, 0x70, 4, 0));
        assertEquals("msg.length", field(() -> MmioMessageLayout.decodeRequest(good, 15, "t")));
        assertEquals("msg.type", field(() -> MmioMessageLayout.decodeRequest(encode(
                new MmioMessageLayout.Request(9, 0, 1, 0x70, 4, 0)), 16, "t")));
        assertEquals("msg.size", field(() -> MmioMessageLayout.decodeRequest(encode(
                new MmioMessageLayout.Request(MmioMessageLayout.TYPE_READ, 0, 1, 0x70, 8, 0)), 16, "t")));
        assertEquals("msg.offset", field(() -> MmioMessageLayout.decodeRequest(encode(
                new MmioMessageLayout.Request(MmioMessageLayout.TYPE_READ, 0, 1, 0x71, 2, 0)), 16, "t")));
        assertEquals("msg.value", field(() -> MmioMessageLayout.decodeRequest(encode(
                new MmioMessageLayout.Request(MmioMessageLayout.TYPE_READ, 0, 1, 0x70, 4, 1)), 16, "t")));
        MemorySegment reserved = encode(new MmioMessageLayout.Request(MmioMessageLayout.TYPE_READ, 0, 1, 0x70, 4, 0));
        reserved.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 11, (byte) 1);
        assertEquals("msg.reserved", field(() -> MmioMessageLayout.decodeRequest(reserved, 16, "t")));
        assertEquals(-1, MmioMessageLayout.peekSlotAndSeq(good, 3));
        assertEquals(1, MmioMessageLayout.peekSlotAndSeq(good, 4));
    }

    @Test
    void shouldGiveEachSlotAndQueueItsOwnDoorbellBit() {
        long seen = 0;
        for (int slot = 0; slot < DoorbellFlagsLayout.MAX_SLOTS; slot++) {
            for (int q = 0; q < DoorbellFlagsLayout.MAX_QUEUES; q++) {
                long f = DoorbellFlagsLayout.queueNotifyFlag(slot, q);
                assertEquals(0, seen & f);
                seen |= f;
                assertEquals(1 << q, DoorbellFlagsLayout.slotBits(f, slot));
            }
            long control = DoorbellFlagsLayout.flag(slot, DoorbellFlagsLayout.CONTROL_BIT);
            assertEquals(0, seen & control);
            seen |= control;
        }
        assertEquals(-1L, seen, "all 64 bits used, none twice");
        assertThrows(IllegalArgumentException.class, () -> DoorbellFlagsLayout.queueNotifyFlag(0, 7));
        assertThrows(IllegalArgumentException.class, () -> DoorbellFlagsLayout.flag(8, 0));
    }

    private static String field(Runnable decode) {
        return assertThrows(VirtioProtocolException.class, decode::run).fault().field();
    }
}
