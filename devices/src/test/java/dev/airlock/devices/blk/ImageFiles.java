package dev.airlock.devices.blk;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** Looks at image files from outside the device: allocated blocks and byte ranges. */
final class ImageFiles {
    private ImageFiles() {
    }

    /** Allocated 512-byte blocks, from {@code stat(1)} (the JDK does not expose st_blocks). */
    static long allocatedBlocks(Path file) throws IOException {
        Process p = new ProcessBuilder("stat", "-c", "%b", file.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.US_ASCII).trim();
        try {
            if (p.waitFor() != 0) {
                throw new IOException("stat failed: " + out);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
        return Long.parseLong(out);
    }

    static byte[] read(Path file, long offset, int length) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(length);
            while (b.hasRemaining() && ch.read(b, offset + b.position()) >= 0) {
                // until full or end of file
            }
            return b.array();
        }
    }

    static boolean isZero(Path file, long offset, int length) throws IOException {
        for (byte x : read(file, offset, length)) {
            if (x != 0) {
                return false;
            }
        }
        return true;
    }
}
