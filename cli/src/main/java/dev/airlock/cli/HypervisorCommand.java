package dev.airlock.cli;

import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.hypervisor.process.HypervisorDaemon;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@code airlock hypervisor}: the multi-process runtime's daemon. It listens on a Unix socket; the
 * control credential (what a client needs to create VMs) is written next to it, readable by the
 * owner only. It runs until interrupted (Ctrl-C, SIGTERM), then destroys every VM.
 */
@Command(name = "hypervisor", mixinStandardHelpOptions = true, description = {
    "Runs the hypervisor daemon of the multi-process runtime.",
    "",
    "Listens on a Unix socket. Every VM and every backend is its own process that attaches with a",
    "credential the daemon issued when it created the VM or assigned the backend; the daemon also",
    "checks the peer's uid with SO_PEERCRED. Shared regions (memfds) and doorbells (eventfds) are",
    "passed with SCM_RIGHTS to exactly the two granted processes. The control credential is written",
    "to SOCKET.credential (mode 0600). Stops on Ctrl-C or SIGTERM."})
final class HypervisorCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--socket", description = "Socket path (default: $XDG_RUNTIME_DIR/airlock/hypervisor.sock, else /tmp/airlock-$USER/hypervisor.sock).")
    Path socket;

    @Option(names = "--max-message-bytes", defaultValue = "240", description = "Largest message-queue message (default: ${DEFAULT-VALUE}).")
    int maxMessageBytes;

    static Path defaultSocket() {
        String runtimeDir = System.getenv("XDG_RUNTIME_DIR");
        Path dir = runtimeDir != null && !runtimeDir.isBlank()
                ? Path.of(runtimeDir, "airlock")
                : Path.of(System.getProperty("java.io.tmpdir"), "airlock-" + System.getProperty("user.name"));
        return dir.resolve("hypervisor.sock");
    }

    /**
     * Where the control credential of a daemon on {@code socket} is kept.
     *
     * @param socket the daemon's socket
     * @return {@code SOCKET.credential}
     */
    static Path credentialFile(Path socket) {
        return socket.resolveSibling(socket.getFileName() + ".credential");
    }

    @Override
    public Integer call() throws IOException, InterruptedException {
        Path path = socket != null ? socket : defaultSocket();
        Files.createDirectories(path.toAbsolutePath().getParent(),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        if (Files.exists(path)) {
            throw new IllegalStateException(path + " exists: another hypervisor may be running (remove it if not)");
        }
        PrintWriter out = spec.commandLine().getOut();
        CountDownLatch stopped = new CountDownLatch(1);
        CountDownLatch cleanedUp = new CountDownLatch(1);
        // On SIGTERM/Ctrl-C: wake the main thread, then hold the JVM until it has destroyed the VMs.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopped.countDown();
            try {
                cleanedUp.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "airlock-hypervisor-shutdown"));
        Path credential = credentialFile(path);
        try (HypervisorDaemon daemon = HypervisorDaemon.start(path, new HypervisorConfig(maxMessageBytes))) {
            Files.deleteIfExists(credential);
            Files.createFile(credential, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.writeString(credential, daemon.controlCredential().toHex() + "\n", StandardCharsets.US_ASCII,
                    StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE);
            out.printf("airlock hypervisor: listening on %s (control credential in %s)%n", path, credential);
            out.flush();
            stopped.await();
        } finally {
            Files.deleteIfExists(credential);
            Files.deleteIfExists(path);
            cleanedUp.countDown();
        }
        return 0;
    }
}
