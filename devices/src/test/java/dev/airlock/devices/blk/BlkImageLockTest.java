package dev.airlock.devices.blk;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Two backends cannot serve one image read-write; read-only backends may share it. */
class BlkImageLockTest {
    @TempDir
    Path dir;

    @Test
    void rejectsASecondReadWriteBackendNamingTheImage() throws IOException {
        Path image = BlkHarness.image(dir, "shared.img", 1 << 20, 0);
        try (BlkDevice first = BlkDevice.open(BlkOptions.builder(image).build())) {
            BlkImageLockedException e = assertThrows(BlkImageLockedException.class, () -> BlkDevice.open(BlkOptions.builder(image).build()));
            assertEquals(image, e.image());
            assertTrue(e.getMessage().contains(image.toString()), e.getMessage());
            assertThrows(BlkImageLockedException.class, () -> BlkDevice.open(BlkOptions.builder(image).readOnly(true).build()),
                    "not even read-only while served read-write");
            // The failed attempts closed their descriptors: the first backend's lock must still hold.
            assertThrows(BlkImageLockedException.class, () -> BlkDevice.open(BlkOptions.builder(image).build()));
            assertEquals(2048, first.capacitySectors());
        }
        try (BlkDevice again = BlkDevice.open(BlkOptions.builder(image).build())) {
            assertEquals(2048, again.capacitySectors(), "closing released the lock");
        }
    }

    @Test
    void shouldLetReadOnlyBackendsShareAnImageButNotWithAWriter() throws IOException {
        Path image = BlkHarness.image(dir, "ro.img", 1 << 20, 0);
        try (BlkDevice a = BlkDevice.open(BlkOptions.builder(image).readOnly(true).build());
             BlkDevice b = BlkDevice.open(BlkOptions.builder(image).readOnly(true).build())) {
            assertTrue(a.options().readOnly() && b.options().readOnly());
            assertThrows(BlkImageLockedException.class, () -> BlkDevice.open(BlkOptions.builder(image).build()));
        }
    }

    @Test
    void rejectsAMissingImageWithItsName() {
        Path missing = dir.resolve("missing.img");
        IOException e = assertThrows(IOException.class, () -> BlkDevice.open(BlkOptions.builder(missing).build()));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
    }
}
