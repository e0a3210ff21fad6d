package dev.airlock.vhostuser;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A real Linux guest's virtio-blk driver against {@link dev.airlock.devices.blk.BlkDevice} served
 * over vhost-user: data integrity, fio, and a back-end killed and restarted during guest I/O.
 */
class RealGuestBlkTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;

    @BeforeAll
    static void installed() {
        RealGuest.assumeInstalled();
    }

    private Path image(long sizeMib) throws Exception {
        Path image = dir.resolve("disk.raw");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(sizeMib * MIB);
        }
        return image;
    }

    private static String md5(Path file, long offset, long length) throws Exception {
        MessageDigest md = MessageDigest.getInstance("MD5");
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
            f.seek(offset);
            byte[] buf = new byte[1 << 20];
            long left = length;
            while (left > 0) {
                int n = f.read(buf, 0, (int) Math.min(buf.length, left));
                md.update(buf, 0, n);
                left -= n;
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    @Test
    void shouldKeepDataIntactUnderBlkVerify() throws Exception {
        Path image = image(64);
        Path sock = dir.resolve("blk.sock");
        try (VhostUserBackend backend = VhostUserBackend.serve(sock, () -> BlkBackendMain.openBlk(image))) {
            RealGuest.Result r = RealGuest.boot(dir, 240, "--blk", sock + ",num-queues=1",
                    RealGuest.EXAMPLES.resolve("blk-verify.sh").toString(), "--", "/dev/vda", "16");
            assertEquals(0, r.exitCode(), r::toString);
            assertTrue(r.stdout().contains("VERIFY OK"), r::toString);
            assertTrue(r.stdout().contains("sectors=" + 64 * MIB / 512), "capacity seen by the guest: " + r.stdout());
            Matcher m = Pattern.compile("MD5 head=([0-9a-f]{32})").matcher(r.stdout());
            assertTrue(m.find(), r::toString);
            assertEquals(m.group(1), md5(image, 0, 16 * MIB), "the image holds what the guest wrote");
            assertEquals(m.group(1), md5(image, 48 * MIB, 16 * MIB), "the tail of the image holds what the guest wrote");
            assertTrue(backend.lastError() == null, () -> "the back-end closed a connection: " + backend.lastError());
        }
    }

    @Test
    void shouldServeTwoQueues() throws Exception {
        Path image = image(64);
        Path sock = dir.resolve("blk.sock");
        try (VhostUserBackend backend = VhostUserBackend.serve(sock, () -> {
            try {
                return dev.airlock.devices.blk.BlkDevice.open(dev.airlock.devices.blk.BlkOptions.builder(image).numQueues(2).build());
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        })) {
            RealGuest.Result r = RealGuest.boot(dir, 240, "--blk", sock + ",num-queues=2",
                    RealGuest.EXAMPLES.resolve("blk-verify.sh").toString(), "--", "/dev/vda", "16");
            assertEquals(0, r.exitCode(), r::toString);
            assertTrue(r.stdout().contains("queues=2"), r::toString);
            assertTrue(r.stdout().contains("VERIFY OK"), r::toString);
            assertTrue(backend.lastError() == null, () -> "the back-end closed a connection: " + backend.lastError());
        }
    }

    @Test
    void shouldRunFio() throws Exception {
        Path image = image(256);
        Path sock = dir.resolve("blk.sock");
        try (VhostUserBackend backend = VhostUserBackend.serve(sock, () -> BlkBackendMain.openBlk(image))) {
            RealGuest.Result r = RealGuest.boot(dir, 240, "--blk", sock + ",num-queues=1",
                    RealGuest.EXAMPLES.resolve("fio-blk.sh").toString(), "--", "/dev/vda", "3");
            assertEquals(0, r.exitCode(), r::toString);
            for (String job : List.of("randread4k_qd32", "randread4k_qd1", "seqwrite64k_qd8")) {
                Matcher m = Pattern.compile("FIO " + job + "\\s+iops=(\\d+)").matcher(r.stdout());
                assertTrue(m.find(), () -> job + " missing: " + r);
                assertTrue(Long.parseLong(m.group(1)) > 0, job + " did no I/O");
            }
            assertTrue(backend.lastError() == null, () -> "the back-end closed a connection: " + backend.lastError());
        }
    }

    private static final String RESTART_SCRIPT = """
            #!/bin/sh
            # Writes a 16 MiB pattern to 10 places with O_DIRECT and reads each back; the host kills
            # and restarts the back-end meanwhile.
            set -e
            DEV=/dev/vda
            dd if=/dev/urandom of=/tmp/pat bs=1M count=16 2>/dev/null
            WANT=$(md5sum </tmp/pat | cut -d' ' -f1)
            i=0
            while [ $i -lt 10 ]; do
                dd if=/tmp/pat of=$DEV bs=1M seek=$((i * 16)) oflag=direct conv=fsync 2>/dev/null
                GOT=$(dd if=$DEV bs=1M skip=$((i * 16)) count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
                [ "$GOT" = "$WANT" ] || { echo "MISMATCH chunk=$i want=$WANT got=$GOT"; exit 1; }
                i=$((i + 1))
            done
            echo "RESTART-VERIFY OK md5=$WANT"
            """;

    private final java.util.List<String> backendLog = new java.util.concurrent.CopyOnWriteArrayList<>();

    private Process startChild(Path sock, Path image) throws Exception {
        String java = ProcessHandle.current().info().command().orElse("java");
        Process p = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-Xmx256m", "-cp",
                System.getProperty("java.class.path"), BlkBackendMain.class.getName(), sock.toString(), image.toString())
                .redirectErrorStream(true).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        String line;
        while ((line = out.readLine()) != null && !line.equals("LISTENING")) {
            System.out.println("[backend] " + line);
        }
        assertEquals("LISTENING", line, "the back-end process did not start");
        Thread.ofPlatform().daemon().start(() -> out.lines().forEach(l -> {
            backendLog.add(l);
            System.out.println("[backend " + p.pid() + "] " + l);
        }));
        return p;
    }

    private static boolean nonZero(Path image, long offset) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
            f.seek(offset);
            byte[] b = new byte[4096];
            f.readFully(b);
            for (byte x : b) {
                if (x != 0) {
                    return true;
                }
            }
            return false;
        }
    }

    /**
     * Kills the back-end (SIGKILL) twice while the guest writes and verifies 10 chunks, each time
     * when a chunk's last page has landed, that is while the guest's flush of that chunk is likely
     * in flight, and starts a new back-end process on the same socket and image 1.5 s later. QEMU
     * (reconnect=1) reconnects and hands the inflight buffer to the new process.
     */
    @Test
    void shouldCompleteGuestIoAcrossABackendKilledAndRestarted() throws Exception {
        Path image = image(256);
        Path sock = dir.resolve("blk.sock");
        Path script = dir.resolve("restart.sh");
        Files.writeString(script, RESTART_SCRIPT);
        java.util.List<Process> backends = new java.util.ArrayList<>();
        backends.add(startChild(sock, image));
        try {
            RealGuest.Result[] result = new RealGuest.Result[1];
            Exception[] failure = new Exception[1];
            Thread guest = Thread.ofPlatform().start(() -> {
                try {
                    result[0] = RealGuest.boot(dir, 280, "--chardev-opts", "reconnect=1", "--blk", sock + ",num-queues=1",
                            script.toString());
                } catch (Exception e) {
                    failure[0] = e;
                }
            });
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(200);
            for (int chunk : new int[] {1, 5}) {
                while (!nonZero(image, (chunk + 1) * 16 * MIB - 4096)) {
                    assertTrue(System.nanoTime() < deadline && guest.isAlive(), "the guest never finished writing chunk " + chunk);
                    Thread.sleep(2);
                }
                Process victim = backends.get(backends.size() - 1);
                victim.destroyForcibly(); // SIGKILL in the middle of guest I/O
                victim.waitFor();
                Thread.sleep(1500);
                backends.add(startChild(sock, image));
            }
            guest.join(TimeUnit.SECONDS.toMillis(320));
            if (failure[0] != null) {
                throw failure[0];
            }
            RealGuest.Result r = result[0];
            assertEquals(0, r.exitCode(), r::toString);
            Matcher m = Pattern.compile("RESTART-VERIFY OK md5=([0-9a-f]{32})").matcher(r.stdout());
            assertTrue(m.find(), r::toString);
            for (int chunk = 0; chunk < 10; chunk++) {
                assertEquals(m.group(1), md5(image, chunk * 16 * MIB, 16 * MIB), "chunk " + chunk + " of the image");
            }
            System.out.println("[restart] back-end processes: " + backends.size() + ", resubmissions: "
                    + backendLog.stream().filter(l -> l.contains("resubmitting")).toList());
        } finally {
            for (Process p : backends) {
                p.destroy();
                if (!p.waitFor(10, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                }
            }
        }
    }
}
