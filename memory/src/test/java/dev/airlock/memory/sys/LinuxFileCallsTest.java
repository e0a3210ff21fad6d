package dev.airlock.memory.sys;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** open, fallocate and flock, on a real file (ext4 under the temp directory, or tmpfs). */
class LinuxFileCallsTest {
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    private Path filled(int blocks) throws IOException {
        Path file = dir.resolve("image");
        byte[] data = new byte[blocks * BLOCK];
        Arrays.fill(data, (byte) 0x5a);
        Files.write(file, data);
        return file;
    }

    private static byte[] read(Path file, long offset, int length) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(length);
            while (b.hasRemaining() && ch.read(b, offset + b.position()) >= 0) {
                // read until full
            }
            return b.array();
        }
    }

    /** Allocated 512-byte blocks of a file, from {@code stat(1)} (the JDK does not expose st_blocks). */
    private static long allocatedBlocks(Path file) throws IOException {
        Process p = new ProcessBuilder("stat", "-c", "%b", file.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.US_ASCII).trim();
        try {
            assertEquals(0, p.waitFor(), out);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
        return Long.parseLong(out);
    }

    @Test
    void shouldPunchAHoleThatReadsAsZerosAndFreesBlocks() throws IOException {
        Path file = filled(16);
        long before = allocatedBlocks(file);
        int fd = Linux.open(file.toString(), Linux.O_RDWR | Linux.O_CLOEXEC);
        try {
            Linux.fallocate(fd, Linux.FALLOC_FL_PUNCH_HOLE | Linux.FALLOC_FL_KEEP_SIZE, 4L * BLOCK, 8L * BLOCK);
        } finally {
            Linux.close(fd);
        }
        assertEquals(16L * BLOCK, Files.size(file), "KEEP_SIZE kept the size");
        assertArrayEquals(new byte[8 * BLOCK], read(file, 4L * BLOCK, 8 * BLOCK), "the hole reads as zeros");
        byte[] kept = new byte[4 * BLOCK];
        Arrays.fill(kept, (byte) 0x5a);
        assertArrayEquals(kept, read(file, 0, 4 * BLOCK), "bytes before the hole are untouched");
        assertArrayEquals(kept, read(file, 12L * BLOCK, 4 * BLOCK), "bytes after the hole are untouched");
        assertTrue(allocatedBlocks(file) <= before - 8 * (BLOCK / 512),
                "8 blocks deallocated: " + before + " -> " + allocatedBlocks(file));
    }

    @Test
    void shouldZeroARangeOrSayTheFileSystemCannot() throws IOException {
        Path file = filled(4);
        int fd = Linux.open(file.toString(), Linux.O_RDWR | Linux.O_CLOEXEC);
        try {
            Linux.fallocate(fd, Linux.FALLOC_FL_ZERO_RANGE | Linux.FALLOC_FL_KEEP_SIZE, 100, 1000);
            assertArrayEquals(new byte[1000], read(file, 100, 1000));
            assertEquals(0x5a, read(file, 99, 1)[0]);
            assertEquals(0x5a, read(file, 1100, 1)[0]);
        } catch (NativeCallException e) {
            assertEquals(Linux.EOPNOTSUPP, e.errno(), "only an unsupported mode may fail: " + e.getMessage());
        } finally {
            Linux.close(fd);
        }
    }

    @Test
    void shouldNameTheCallWhenFallocateOrOpenFails() throws IOException {
        Path file = filled(1);
        int fd = Linux.open(file.toString(), Linux.O_RDONLY | Linux.O_CLOEXEC);
        try {
            NativeCallException e = assertThrows(NativeCallException.class,
                    () -> Linux.fallocate(fd, Linux.FALLOC_FL_PUNCH_HOLE | Linux.FALLOC_FL_KEEP_SIZE, 0, BLOCK));
            assertEquals(Errno.EBADF, e.errno(), "not open for writing: " + e.getMessage());
            assertTrue(e.getMessage().startsWith("fallocate(fd=" + fd + ", mode=0x3, offset=0, len=4096)"), e.getMessage());
        } finally {
            Linux.close(fd);
        }
        NativeCallException missing = assertThrows(NativeCallException.class,
                () -> Linux.open(dir.resolve("missing").toString(), Linux.O_RDONLY));
        assertEquals(Errno.ENOENT, missing.errno());
        assertTrue(missing.getMessage().contains("missing"), missing.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Linux.open(file.toString(), 0x40));
    }

    @Test
    void shouldRefuseASecondExclusiveFlockEvenInTheSameProcess() throws IOException {
        Path file = filled(1);
        int a = Linux.open(file.toString(), Linux.O_RDWR | Linux.O_CLOEXEC);
        int b = Linux.open(file.toString(), Linux.O_RDONLY | Linux.O_CLOEXEC);
        int c = Linux.open(file.toString(), Linux.O_RDONLY | Linux.O_CLOEXEC);
        try {
            assertTrue(Linux.flock(a, Linux.LOCK_EX | Linux.LOCK_NB));
            assertFalse(Linux.flock(b, Linux.LOCK_SH | Linux.LOCK_NB), "a shared lock conflicts with the exclusive one");
            Linux.close(c); // closing another descriptor of the file does not drop a's lock (unlike fcntl locks)
            c = -1;
            assertFalse(Linux.flock(b, Linux.LOCK_EX | Linux.LOCK_NB));
            assertTrue(Linux.flock(a, Linux.LOCK_UN));
            assertTrue(Linux.flock(b, Linux.LOCK_SH | Linux.LOCK_NB), "free again after LOCK_UN");
        } finally {
            Linux.close(a);
            Linux.close(b);
            if (c >= 0) {
                Linux.close(c);
            }
        }
    }
}
