package dev.airlock.devices.blk;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The image file on tmpfs ({@code /dev/shm}), where FALLOC_FL_ZERO_RANGE is not supported: write-zeroes
 * falls back to writing zeros, discard punches holes.
 */
class BlkImageTest {
    private final Path dir;

    BlkImageTest() throws IOException {
        Path shm = Path.of("/dev/shm");
        dir = Files.createTempDirectory(Files.isDirectory(shm) ? shm : Path.of(System.getProperty("java.io.tmpdir")), "blk-image-test");
    }

    @AfterEach
    void delete() throws IOException {
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    private Path filled(int bytes) throws IOException {
        byte[] data = new byte[bytes];
        Arrays.fill(data, (byte) 0x33);
        return Files.write(dir.resolve("img"), data);
    }

    @Test
    void shouldZeroARangeEvenWithoutZeroRangeSupport() throws IOException {
        Path file = filled(1 << 20);
        try (BlkImage image = BlkImage.open(file, false)) {
            image.writeZeroes(4096, 8192, false);
            image.writeZeroes(65536, 4096, false); // a second time takes the remembered fallback (if any)
        }
        byte[] after = Files.readAllBytes(file);
        assertArrayEquals(new byte[8192], Arrays.copyOfRange(after, 4096, 12288));
        assertArrayEquals(new byte[4096], Arrays.copyOfRange(after, 65536, 69632));
        assertEquals(0x33, after[4095]);
        assertEquals(0x33, after[12288]);
        assertEquals(1 << 20, after.length, "the size is kept");
    }

    @Test
    void shouldPunchHolesForDiscard() throws IOException {
        Path file = filled(1 << 20);
        long before = ImageFiles.allocatedBlocks(file);
        try (BlkImage image = BlkImage.open(file, false)) {
            image.discard(0, 512 * 1024);
        }
        assertTrue(ImageFiles.allocatedBlocks(file) <= before - 1024, before + " -> " + ImageFiles.allocatedBlocks(file));
        assertTrue(ImageFiles.isZero(file, 0, 512 * 1024));
    }

    @Test
    void shouldReadAndWriteScatteredSegments() throws IOException {
        Path file = filled(1 << 16);
        byte[] a = new byte[512];
        byte[] b = new byte[1024];
        Arrays.fill(a, (byte) 1);
        Arrays.fill(b, (byte) 2);
        try (BlkImage image = BlkImage.open(file, false)) {
            image.write(1024, List.of(MemorySegment.ofArray(a), MemorySegment.ofArray(b)));
            byte[] back = new byte[1536];
            image.read(1024, List.of(MemorySegment.ofArray(back).asSlice(0, 1000), MemorySegment.ofArray(back).asSlice(1000)));
            assertEquals(1, back[511]);
            assertEquals(2, back[512]);
            assertEquals(2, back[1535]);
            assertThrows(java.io.EOFException.class, () -> image.read((1 << 16) - 512, List.of(MemorySegment.ofArray(new byte[1024]))));
        }
    }

    @Test
    void rejectsWritesToAReadOnlyImage() throws IOException {
        Path file = filled(4096);
        try (BlkImage image = BlkImage.open(file, true)) {
            assertThrows(IOException.class, () -> image.write(0, List.of(MemorySegment.ofArray(new byte[512]))));
            assertThrows(IOException.class, () -> image.writeZeroes(0, 512, false));
        }
    }
}
