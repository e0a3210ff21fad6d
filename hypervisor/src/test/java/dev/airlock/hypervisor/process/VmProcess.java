package dev.airlock.hypervisor.process;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/** A {@link TestVmMain} child JVM, driven line by line. */
final class VmProcess implements AutoCloseable {
    private final Process process;
    private final BufferedReader out;
    private final Writer in;
    private final ExecutorService reader = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "vm-process-reader");
        t.setDaemon(true);
        return t;
    });
    /** The first line the child printed: ATTACHED id pid, or REFUSED reason. */
    final String greeting;

    private VmProcess(Process process) {
        this.process = process;
        this.out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        this.in = new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8);
        this.greeting = readLine();
    }

    static VmProcess start(Path socket, Credential credential, Path log) {
        String java = ProcessHandle.current().info().command().orElseThrow();
        ProcessBuilder builder = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-Xmx64m", "-XX:TieredStopAtLevel=1",
                "-Xshare:auto", "-cp", System.getProperty("java.class.path"), TestVmMain.class.getName(),
                socket.toString(), credential.toHex());
        builder.redirectError(ProcessBuilder.Redirect.appendTo(log.toFile()));
        try {
            return new VmProcess(builder.start());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    boolean attached() {
        return greeting != null && greeting.startsWith("ATTACHED");
    }

    long pid() {
        return process.pid();
    }

    String command(String line) {
        try {
            in.write(line + "\n");
            in.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("vm process " + process.pid() + " is gone", e);
        }
        return readLine();
    }

    private String readLine() {
        Future<String> next = reader.submit(out::readLine);
        try {
            return next.get(20, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("vm process " + process.pid() + " did not answer", e);
        }
    }

    void kill() {
        process.destroyForcibly(); // SIGKILL
        try {
            process.waitFor(20, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    boolean waitForExit() throws InterruptedException {
        return process.waitFor(20, TimeUnit.SECONDS);
    }

    int exitValue() {
        return process.exitValue();
    }

    /** The targets of the process's open fds, from /proc/PID/fd. */
    List<String> fdTargets() {
        return fdTargets(Path.of("/proc/" + process.pid() + "/fd"));
    }

    static List<String> fdTargets(Path fdDir) {
        try (Stream<Path> fds = Files.list(fdDir)) {
            return fds.map(fd -> {
                try {
                    return Files.readSymbolicLink(fd).toString();
                } catch (IOException e) {
                    return "";
                }
            }).toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The lines of /proc/PID/maps. */
    List<String> maps() {
        try {
            return Files.readAllLines(Path.of("/proc/" + process.pid() + "/maps"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            try {
                command("exit");
            } catch (RuntimeException e) {
                // already going
            }
            try {
                if (!process.waitFor(10, TimeUnit.SECONDS)) {
                    kill();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                kill();
            }
        }
        reader.shutdownNow();
    }
}
