package dev.airlock.cli.machine;

import dev.airlock.devices.console.ConsoleEndpoint;
import dev.airlock.transport.TransportKind;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The guest application on an in-process machine: every block device gets the round trip. */
class GuestWorkloadTest {
    private static final long DATA_BYTES = 4L << 20;

    @Test
    @Timeout(60)
    void shouldExerciseEveryBlockDevice(@TempDir Path dir) throws Exception {
        Path first = image(dir.resolve("a.raw"), 8L << 20);
        Path second = image(dir.resolve("b.raw"), 8L << 20);
        List<DeviceSpec> specs = List.of(DeviceSpec.parse("blk:image=" + first, 0, TransportKind.MSGQ_MMIO),
                DeviceSpec.parse("blk:image=" + second, 1, TransportKind.SHMEM_DOORBELL));
        GuestWorkload.Options options = new GuestWorkload.Options(DATA_BYTES, 4, 3, "unused");
        GuestWorkload.Result result;
        try (EmbeddedMachine machine = new EmbeddedMachine("guest1", 16L << 20, specs,
                s -> ConsoleEndpoint.streams(InputStream.nullInputStream(), new ByteArrayOutputStream()))) {
            result = GuestWorkload.run(machine.guestDevices(), machine.secondary().addressSpace(), 0, options);
        }
        assertTrue(result.passed(), String.join("\n", result.report()));
        assertEquals(List.of("blk@0 over msgq-mmio", "blk@1 over shmem-doorbell"), result.devices());
        assertEquals(2, result.blk().size());
        for (int i = 0; i < 2; i++) {
            GuestWorkload.BlkResult b = result.blk().get(i);
            assertEquals(result.devices().get(i), b.device());
            assertEquals(DATA_BYTES, b.written());
            assertEquals(b.writeCrc(), crc(i == 0 ? first : second, DATA_BYTES), "the data is on " + b.device() + "'s image");
        }
        assertEquals(2, result.report().stream().filter(l -> l.startsWith("  blk CRC32C")).count(), result.report().toString());
    }

    @Test
    void shouldFailWhenAnyBlockDeviceMismatches() {
        GuestWorkload.BlkResult good = new GuestWorkload.BlkResult("blk@0", 1 << 20, 7, 7, 1, 1, 8);
        GuestWorkload.BlkResult bad = new GuestWorkload.BlkResult("blk@vhost-user:q.sock", 1 << 20, 7, 8, 1, 1, 8);
        GuestWorkload.Result result = new GuestWorkload.Result(List.of("blk@0", "blk@vhost-user:q.sock"), List.of(good, bad),
                null, null, List.of());
        assertFalse(result.passed());
        assertTrue(result.report().stream().anyMatch(l -> l.contains("MISMATCH")), result.report().toString());
        assertTrue(new GuestWorkload.Result(List.of("blk@0"), List.of(good), null, null, List.of()).passed());
    }

    static Path image(Path path, long bytes) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(path.toFile(), "rw")) {
            f.setLength(bytes);
        }
        return path;
    }

    static long crc(Path image, long bytes) throws Exception {
        CRC32C crc = new CRC32C();
        byte[] all = Files.readAllBytes(image);
        crc.update(all, 0, (int) bytes);
        return crc.getValue();
    }
}
