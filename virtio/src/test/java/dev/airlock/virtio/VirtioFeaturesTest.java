package dev.airlock.virtio;

import org.junit.jupiter.api.Test;

import static dev.airlock.virtio.VirtioFeatures.VIRTIO_F_EVENT_IDX;
import static dev.airlock.virtio.VirtioFeatures.VIRTIO_F_INDIRECT_DESC;
import static dev.airlock.virtio.VirtioFeatures.VIRTIO_F_RING_RESET;
import static dev.airlock.virtio.VirtioFeatures.VIRTIO_F_VERSION_1;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class VirtioFeaturesTest {
    @Test
    void shouldUseTheSpecBitNumbers() {
        assertEquals(28, VIRTIO_F_INDIRECT_DESC);
        assertEquals(29, VIRTIO_F_EVENT_IDX);
        assertEquals(32, VIRTIO_F_VERSION_1);
        assertEquals(33, VirtioFeatures.VIRTIO_F_ACCESS_PLATFORM);
        assertEquals(34, VirtioFeatures.VIRTIO_F_RING_PACKED);
        assertEquals(35, VirtioFeatures.VIRTIO_F_IN_ORDER);
        assertEquals(36, VirtioFeatures.VIRTIO_F_ORDER_PLATFORM);
        assertEquals(37, VirtioFeatures.VIRTIO_F_SR_IOV);
        assertEquals(38, VirtioFeatures.VIRTIO_F_NOTIFICATION_DATA);
        assertEquals(39, VirtioFeatures.VIRTIO_F_NOTIF_CONFIG_DATA);
        assertEquals(40, VIRTIO_F_RING_RESET);
    }

    @Test
    void shouldSetTestAndClearBits() {
        long f = VirtioFeatures.with(0, VIRTIO_F_VERSION_1);
        assertTrue(VirtioFeatures.has(f, VIRTIO_F_VERSION_1));
        assertFalse(VirtioFeatures.has(f, VIRTIO_F_EVENT_IDX));
        assertEquals(0, VirtioFeatures.without(f, VIRTIO_F_VERSION_1));
        assertEquals(1L << 32 | 1L << 29, VirtioFeatures.of(VIRTIO_F_VERSION_1, VIRTIO_F_EVENT_IDX));
        assertThrows(IllegalArgumentException.class, () -> VirtioFeatures.bit(64));
        assertThrows(IllegalArgumentException.class, () -> VirtioFeatures.bit(-1));
    }

    @Test
    void shouldSplitIntoSelectWords() {
        long f = VirtioFeatures.of(VIRTIO_F_VERSION_1, VIRTIO_F_RING_RESET, VIRTIO_F_INDIRECT_DESC, 31);
        assertEquals(1 << 28 | 1 << 31, VirtioFeatures.word(f, 0));
        assertEquals(1 | 1 << 8, VirtioFeatures.word(f, 1));
        assertEquals(0, VirtioFeatures.word(f, 2));
        assertEquals(0, VirtioFeatures.word(f, -1));
        assertEquals(f, VirtioFeatures.withWord(VirtioFeatures.withWord(0, 0, 1 << 28 | 1 << 31), 1, 1 | 1 << 8));
        assertEquals(0xffff_ffffL, VirtioFeatures.withWord(-1L, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> VirtioFeatures.withWord(0, 2, 1));
    }

    @Test
    void shouldDescribeBits() {
        assertEquals("3|INDIRECT_DESC|VERSION_1", VirtioFeatures.describe(VirtioFeatures.of(3, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1)));
        assertEquals("none", VirtioFeatures.describe(0));
    }
}
