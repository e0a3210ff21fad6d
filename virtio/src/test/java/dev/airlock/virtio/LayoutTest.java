package dev.airlock.virtio;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.MemoryLayout.PathElement.sequenceElement;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The layouts against the byte positions of VIRTIO 1.2 §2.7, and little-endian encoding. */
class LayoutTest {
    @Test
    void shouldMatchTheSpecSizesAndOffsets() {
        assertEquals(16, VirtqDescLayout.LAYOUT.byteSize());
        assertEquals(0, VirtqDescLayout.ADDR_OFFSET);
        assertEquals(8, VirtqDescLayout.LEN_OFFSET);
        assertEquals(12, VirtqDescLayout.FLAGS_OFFSET);
        assertEquals(14, VirtqDescLayout.NEXT_OFFSET);
        assertEquals(16 * 256, VirtqDescLayout.tableLengthBytes(256));
        for (int size = 1; size <= Virtqueues.MAX_QUEUE_SIZE; size <<= 1) {
            assertEquals(6 + 2L * size, VirtqAvailLayout.lengthBytes(size));
            assertEquals(6 + 2L * size, VirtqAvailLayout.layout(size).byteSize());
            assertEquals(6 + 8L * size, VirtqUsedLayout.lengthBytes(size));
            assertEquals(6 + 8L * size, VirtqUsedLayout.layout(size).byteSize());
            assertEquals(VirtqUsedLayout.layout(size).byteOffset(groupElement("ring"), sequenceElement(size - 1), groupElement("len")),
                    VirtqUsedLayout.elemOffset(size - 1) + VirtqUsedLayout.ELEM_LEN_OFFSET);
            assertEquals(VirtqAvailLayout.layout(size).byteOffset(groupElement("ring"), sequenceElement(size - 1)),
                    VirtqAvailLayout.ringEntryOffset(size - 1));
        }
        assertEquals(2, VirtqAvailLayout.IDX_OFFSET);
        assertEquals(2, VirtqUsedLayout.IDX_OFFSET);
        assertEquals(4, VirtqUsedLayout.ELEM_LEN_OFFSET);
    }

    @Test
    void shouldEncodeLittleEndian() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment table = arena.allocate(32, 16);
            VirtqDescLayout.ADDR.set(table, 16L, 0x0102_0304_0506_0708L);
            VirtqDescLayout.LEN.set(table, 16L, 0x0a0b_0c0d);
            VirtqDescLayout.FLAGS.set(table, 16L, (short) 0x0102);
            VirtqDescLayout.NEXT.set(table, 16L, (short) 0x0304);
            byte[] expected = {8, 7, 6, 5, 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a, 2, 1, 4, 3};
            for (int i = 0; i < 16; i++) {
                assertEquals(expected[i], table.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 16 + i));
            }
        }
    }

    @Test
    void shouldApplyTheEventIndexRule() {
        // need_event(event, new, old): the move old -> new published the entry at index event.
        assertTrue(Virtqueues.needEvent(5, 6, 5));
        assertFalse(Virtqueues.needEvent(6, 6, 5));
        assertTrue(Virtqueues.needEvent(3, 10, 0));
        assertFalse(Virtqueues.needEvent(10, 10, 0));
        assertTrue(Virtqueues.needEvent(0xffff, 2, 0xfffe), "across the wrap");
        assertFalse(Virtqueues.needEvent(2, 2, 0xfffe));
        assertFalse(Virtqueues.needEvent(7, 5, 5), "nothing published");
        assertEquals(3, Virtqueues.idxDistance(0xfffe, 1));
        assertTrue(Virtqueues.isValidQueueSize(1));
        assertTrue(Virtqueues.isValidQueueSize(32768));
        assertFalse(Virtqueues.isValidQueueSize(65536));
        assertFalse(Virtqueues.isValidQueueSize(0));
        assertFalse(Virtqueues.isValidQueueSize(384));
    }
}
