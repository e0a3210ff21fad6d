package dev.airlock.vhostuser;

import org.junit.jupiter.api.Assumptions;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * qemu-storage-daemon exporting a raw image as vhost-user-blk, for the frontend tests. Tests that
 * need it are skipped where it is not installed ({@code ../shared/realguest/setup.sh} installs it).
 */
final class Qsd implements AutoCloseable {
    static final Path BINARY = Path.of("/usr/bin/qemu-storage-daemon");

    private final Process process;

    private Qsd(Process process) {
        this.process = process;
    }

    /** A sparse raw image of {@code bytes}. */
    static Path image(Path file, long bytes) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(bytes);
        }
        return file;
    }

    /**
     * Starts qsd and waits until it listens; a stale socket file (left by a killed daemon) is removed first.
     *
     * @param log          where its output goes (appended)
     * @param exportOptions more options of the export, each {@code ,key=value}
     */
    static Qsd start(Path image, Path socket, boolean writable, Path log, String... exportOptions)
            throws IOException, InterruptedException {
        Assumptions.assumeTrue(Files.isExecutable(BINARY), "qemu-storage-daemon is not installed: " + BINARY);
        Files.deleteIfExists(socket);
        Process p = new ProcessBuilder(BINARY.toString(),
                "--blockdev", "driver=file,node-name=disk0,filename=" + image,
                "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=" + socket
                        + ",writable=" + (writable ? "on" : "off") + String.join("", exportOptions))
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!Files.exists(socket)) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw new AssertionError("qemu-storage-daemon did not listen: " + Files.readString(log));
            }
            Thread.sleep(10);
        }
        return new Qsd(p);
    }

    /** SIGKILL, and waits until it is gone. */
    void kill() throws InterruptedException {
        process.destroyForcibly().waitFor();
    }

    boolean isAlive() {
        return process.isAlive();
    }

    /** SIGTERM, then SIGKILL after 10 s. */
    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(10, TimeUnit.SECONDS)) {
            process.destroyForcibly().waitFor();
        }
    }
}
