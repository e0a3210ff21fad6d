package dev.airlock.cli;

import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.hypervisor.process.HypervisorDaemon;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code airlock vm run NAME --device blk,vhost-user=SOCKET}: the VM process acts as the VMM toward
 * a vhost-user-blk backend, qemu-storage-daemon or {@code airlock backend blk --vhost-user} (a
 * process), with no hypervisor device at all ({@code --devices 0}) or beside them.
 */
class VmRunVhostUserTest {
    private static final Path QSD = Path.of("/usr/bin/qemu-storage-daemon");
    private static final long IMAGE_BYTES = 16L << 20;
    private static final long DATA_BYTES = 8L << 20;
    private static final Pattern WRITTEN = Pattern.compile("blk CRC32C +written ([0-9a-f]{8}), read ([0-9a-f]{8})");

    @TempDir
    Path dir;

    @Test
    @Timeout(30)
    void shouldRunTheApplicationOnQemuStorageDaemon() throws Exception {
        Path image = image("qsd.raw");
        Path socket = dir.resolve("qsd.sock");
        Process qsd = startQsd(image, socket);
        try (HypervisorDaemon daemon = startDaemon()) {
            AirlockCommandTest.Run r = vmRun("--devices", "0", "--device", "blk,vhost-user=" + socket + ",reconnect=10");
            assertPassed(r, List.of("blk@vhost-user:qsd.sock"));
            assertEquals(List.of(crc(image)), writtenCrcs(r), "the data is on the image");
        } finally {
            stop(qsd);
        }
    }

    @Test
    @Timeout(30)
    void shouldRunTheApplicationOnAirlocksVhostUserBackend() throws Exception {
        Path image = image("airlock.raw");
        Path socket = dir.resolve("airlock.sock");
        Process backend = startAirlockBackend(image, socket);
        try (HypervisorDaemon daemon = startDaemon()) {
            AirlockCommandTest.Run r = vmRun("--device", "blk,vhost-user=" + socket + ",region=4M");
            assertPassed(r, List.of("blk@vhost-user:airlock.sock"));
            assertEquals(List.of(crc(image)), writtenCrcs(r), "the data is on the image");
        } finally {
            stop(backend);
        }
    }

    @Test
    @Timeout(40)
    void shouldRunOnAHypervisorDeviceAndTwoVhostUserDevices() throws Exception {
        Path qsdImage = image("qsd.raw");
        Path airlockImage = image("airlock.raw");
        Path hvImage = image("hv.raw");
        Path qsdSocket = dir.resolve("qsd.sock");
        Path airlockSocket = dir.resolve("airlock.sock");
        Process qsd = startQsd(qsdImage, qsdSocket);
        Process vhostUserBackend = startAirlockBackend(airlockImage, airlockSocket);
        Process hvBackend = null;
        try (HypervisorDaemon daemon = startDaemon()) {
            assertEquals(0, AirlockCommandTest.run("vm", "create", "host", "--primary", "--ram", "16M", "--socket", hvSocket())
                    .exitCode());
            assertEquals(0, AirlockCommandTest.run("vm", "start", "host", "--socket", hvSocket()).exitCode());
            Files.createFile(dir.resolve("backend.log"));
            hvBackend = SelfLauncher.start(dir.resolve("backend.log"), "backend", "blk", "--socket", hvSocket(), "--vm", "guest1",
                    "--image", hvImage.toString());
            awaitReady(hvBackend, "backend.log");
            AirlockCommandTest.Run r = vmRun("--devices", "1", "--device", "blk,vhost-user=" + qsdSocket,
                    "--device", "blk,vhost-user=" + airlockSocket);
            assertPassed(r, List.of("blk@0 over msgq-mmio", "blk@vhost-user:qsd.sock", "blk@vhost-user:airlock.sock"));
            assertEquals(List.of(crc(hvImage), crc(qsdImage), crc(airlockImage)), writtenCrcs(r), "each device's data is on its image");
        } finally {
            if (hvBackend != null) {
                stop(hvBackend);
            }
            stop(vhostUserBackend);
            stop(qsd);
        }
    }

    @Test
    void rejectsBadVhostUserDevicesInOneLine() {
        String s = dir.resolve("none.sock").toString();
        AirlockCommandTest.Run console = AirlockCommandTest.run("vm", "run", "guest1", "--socket", s, "--device", "console,vhost-user=/x");
        assertEquals(Airlock.EXIT_ERROR, console.exitCode());
        assertEquals(1, console.err().strip().lines().count(), console.err());
        assertTrue(console.err().startsWith("airlock: console over vhost-user is not supported (only blk)"), console.err());
        AirlockCommandTest.Run noSocket = AirlockCommandTest.run("vm", "run", "guest1", "--socket", s, "--device", "blk");
        assertTrue(noSocket.err().contains("say which socket: blk,vhost-user=SOCKET"), noSocket.err());
        AirlockCommandTest.Run negative = AirlockCommandTest.run("vm", "run", "guest1", "--socket", s, "--devices", "-1");
        assertTrue(negative.err().contains("--devices must be 0 or more"), negative.err());
        AirlockCommandTest.Run demo = AirlockCommandTest.run("demo", "--transport", "vhost-user");
        assertEquals(Airlock.EXIT_ERROR, demo.exitCode());
        assertTrue(demo.err().contains("vhost-user is not a hypervisor transport; use vm run --device blk,vhost-user=SOCKET"), demo.err());
    }

    @Test
    @Timeout(30)
    void rejectsASocketNobodyListensOn() throws Exception {
        try (HypervisorDaemon daemon = startDaemon()) {
            AirlockCommandTest.Run r = vmRun("--timeout", "1", "--device", "blk,vhost-user=" + dir.resolve("nobody.sock"));
            assertEquals(Airlock.EXIT_ERROR, r.exitCode(), r.out());
            assertTrue(r.err().contains("blk@vhost-user:nobody.sock: no backend listens on"), r.err());
        }
    }

    // ---------------------------------------------------------------- support

    private String hvSocket() {
        return dir.resolve("hv.sock").toString();
    }

    /** A daemon with the secondary guest1 (32 MiB) created and started; the test is guest1's process. */
    private HypervisorDaemon startDaemon() throws Exception {
        Path socket = dir.resolve("hv.sock");
        HypervisorDaemon daemon = HypervisorDaemon.start(socket, HypervisorConfig.DEFAULT);
        try {
            Files.writeString(HypervisorCommand.credentialFile(socket), daemon.controlCredential().toHex() + "\n");
            AirlockCommandTest.Run created = AirlockCommandTest.run("vm", "create", "guest1", "--ram", "32M", "--socket", hvSocket());
            assertEquals(0, created.exitCode(), created.err());
            assertEquals(0, AirlockCommandTest.run("vm", "start", "guest1", "--socket", hvSocket()).exitCode());
            return daemon;
        } catch (Exception | Error e) {
            daemon.close();
            throw e;
        }
    }

    private AirlockCommandTest.Run vmRun(String... options) {
        List<String> args = new java.util.ArrayList<>(List.of("vm", "run", "guest1", "--socket", hvSocket(), "--data", "8M"));
        args.addAll(List.of(options));
        return AirlockCommandTest.run(args.toArray(String[]::new));
    }

    private static void assertPassed(AirlockCommandTest.Run r, List<String> devices) {
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("guest1: running on " + devices), r.out());
        assertTrue(r.out().contains("devices           " + devices), r.out());
        assertEquals(devices.size(), r.out().lines().filter(l -> l.startsWith("  blk CRC32C")).count(), r.out());
        assertTrue(r.out().contains("result            PASS"), r.out());
        assertFalse(r.out().contains("MISMATCH"), r.out());
    }

    /** The CRC32C of what was written to each block device, in report order. */
    private static List<Long> writtenCrcs(AirlockCommandTest.Run r) {
        List<Long> crcs = new java.util.ArrayList<>();
        Matcher m = WRITTEN.matcher(r.out());
        while (m.find()) {
            crcs.add(Long.parseLong(m.group(1), 16));
        }
        return crcs;
    }

    private Path image(String name) throws Exception {
        Path image = dir.resolve(name);
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(IMAGE_BYTES);
        }
        return image;
    }

    /** CRC32C of the first {@link #DATA_BYTES} of an image: what the application wrote from sector 0. */
    private static long crc(Path image) throws Exception {
        CRC32C crc = new CRC32C();
        crc.update(Files.readAllBytes(image), 0, (int) DATA_BYTES);
        return crc.getValue();
    }

    private Process startQsd(Path image, Path socket) throws Exception {
        Assumptions.assumeTrue(Files.isExecutable(QSD), "qemu-storage-daemon is not installed: " + QSD);
        Path log = dir.resolve("qsd-" + socket.getFileName() + ".log");
        Process qsd = new ProcessBuilder(QSD.toString(),
                "--blockdev", "driver=file,node-name=disk0,filename=" + image,
                "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=" + socket + ",writable=on")
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!Files.exists(socket)) {
            if (!qsd.isAlive() || System.nanoTime() > deadline) {
                qsd.destroyForcibly();
                throw new AssertionError("qemu-storage-daemon did not listen: " + Files.readString(log));
            }
            Thread.sleep(20);
        }
        return qsd;
    }

    private Process startAirlockBackend(Path image, Path socket) throws Exception {
        String logName = "backend-" + socket.getFileName() + ".log";
        Files.createFile(dir.resolve(logName));
        Process backend = SelfLauncher.start(dir.resolve(logName), "backend", "blk", "--vhost-user", socket.toString(),
                "--image", image.toString());
        try {
            awaitReady(backend, logName);
        } catch (Exception | Error e) {
            backend.destroyForcibly();
            throw e;
        }
        return backend;
    }

    private void awaitReady(Process backend, String logName) throws Exception {
        BufferedReader out = new BufferedReader(new InputStreamReader(backend.getInputStream(), StandardCharsets.UTF_8));
        String ready = out.readLine();
        assertTrue(ready != null && ready.startsWith("READY"), () -> ready + "\n" + log(logName));
    }

    private String log(String name) {
        try {
            return Files.readString(dir.resolve(name));
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }

    private static void stop(Process p) throws InterruptedException {
        p.destroy();
        if (!p.waitFor(10, TimeUnit.SECONDS)) {
            p.destroyForcibly().waitFor();
        }
    }
}
