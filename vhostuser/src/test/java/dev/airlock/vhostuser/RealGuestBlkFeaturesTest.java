package dev.airlock.vhostuser;

import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.devices.blk.BlkOptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Linux's virtio_blk against {@link BlkDevice} over vhost-user: the read-only flag, block size and
 * capacity the guest sees, and discard and flush reaching the image on the host.
 */
class RealGuestBlkFeaturesTest {
    private static final long MIB = 1L << 20;

    @TempDir
    Path dir;

    @BeforeAll
    static void installed() {
        RealGuest.assumeInstalled();
    }

    private Path script(String name, String text) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, text);
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
        return p;
    }

    private Path image(long sizeMib, byte fill, long fillMib) throws IOException {
        Path image = dir.resolve("disk.raw");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(sizeMib * MIB);
            byte[] chunk = new byte[(int) MIB];
            Arrays.fill(chunk, fill);
            for (long i = 0; i < fillMib; i++) {
                f.write(chunk);
            }
        }
        return image;
    }

    private static BlkDevice open(BlkOptions options, AtomicReference<BlkDevice> last) {
        try {
            BlkDevice d = BlkDevice.open(options);
            last.set(d);
            return d;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void shouldShowTheGuestAReadOnlyDiskOfTheRightSize() throws Exception {
        Path image = image(32, (byte) 0x5a, 1);
        Path sock = dir.resolve("ro.sock");
        Path guest = script("ro.sh", """
                #!/bin/sh
                echo "INFO ro=$(cat /sys/block/vda/ro) lbs=$(cat /sys/block/vda/queue/logical_block_size) sectors=$(cat /sys/block/vda/size)"
                if dd if=/dev/zero of=/dev/vda bs=4k count=1 oflag=direct 2>/dev/null; then echo "WRITE ACCEPTED"; else echo "WRITE REFUSED"; fi
                dd if=/dev/vda bs=4k count=1 iflag=direct 2>/dev/null | od -An -tx1 | head -1
                """);
        AtomicReference<BlkDevice> last = new AtomicReference<>();
        try (VhostUserBackend backend = VhostUserBackend.serve(sock, () -> open(BlkOptions.builder(image).readOnly(true).build(), last))) {
            RealGuest.Result r = RealGuest.boot(dir, 240, "--blk", sock + ",num-queues=1", guest.toString());
            assertEquals(0, r.exitCode(), r::toString);
            assertTrue(r.stdout().contains("INFO ro=1 lbs=512 sectors=" + 32 * MIB / 512), r::toString);
            assertTrue(r.stdout().contains("WRITE REFUSED"), r::toString);
            assertTrue(r.stdout().contains("5a 5a 5a 5a"), "the guest reads the image: " + r.stdout());
            assertEquals(0, last.get().metrics().writes(), "no write reached the backend");
            assertTrue(backend.lastError() == null, backend::lastError);
        }
        byte[] head = new byte[4096];
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
            f.readFully(head);
        }
        for (byte b : head) {
            assertEquals((byte) 0x5a, b, "the image is untouched");
        }
    }

    @Test
    void shouldLetDiscardAndFlushReachTheImage() throws Exception {
        Path image = image(64, (byte) 0xaa, 8);
        Path sock = dir.resolve("rw.sock");
        Path guest = script("discard.sh", """
                #!/bin/sh
                set -e
                dd if=/dev/urandom of=/dev/vda bs=1M count=4 seek=16 oflag=direct conv=fsync 2>/dev/null
                echo "DISCARD max=$(cat /sys/block/vda/queue/discard_max_bytes)"
                blkdiscard -o 0 -l 4194304 /dev/vda
                echo "DISCARD OK"
                sync
                """);
        AtomicReference<BlkDevice> last = new AtomicReference<>();
        try (VhostUserBackend backend = VhostUserBackend.serve(sock, () -> open(BlkOptions.builder(image).build(), last))) {
            RealGuest.Result r = RealGuest.boot(dir, 240, "--blk", sock + ",num-queues=1", guest.toString());
            assertEquals(0, r.exitCode(), r::toString);
            assertTrue(r.stdout().contains("DISCARD OK"), r::toString);
            assertTrue(last.get().metrics().discards() >= 1, () -> "discards: " + last.get().metrics());
            assertTrue(last.get().metrics().flushes() >= 1, () -> "flushes: " + last.get().metrics());
            assertTrue(backend.lastError() == null, backend::lastError);
        }
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
            byte[] discarded = new byte[(int) (4 * MIB)];
            f.readFully(discarded);
            for (int i = 0; i < discarded.length; i += 512) {
                assertEquals(0, discarded[i], "discarded range reads as zeros on the host at " + i);
            }
            byte[] kept = new byte[4096];
            f.seek(6 * MIB);
            f.readFully(kept);
            assertEquals((byte) 0xaa, kept[0], "data after the discarded range is untouched");
            byte[] written = new byte[(int) (4 * MIB)];
            f.seek(16 * MIB);
            f.readFully(written);
            boolean nonZero = false;
            for (byte b : written) {
                nonZero |= b != 0;
            }
            assertTrue(nonZero, "the guest's flushed write is on the image");
        }
    }
}
