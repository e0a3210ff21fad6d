package dev.airlock.transport;

import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.process.Credential;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/** An {@link EchoBackendMain} child JVM, driven line by line over its stdin and stdout. */
final class BackendProcess implements AutoCloseable {
    /** One echo device the child serves. */
    record Device(TransportKind kind, NotificationMode mode, int slot, SharedRegionInfo region) {
    }

    private final Process process;
    private final Path log;
    private final BufferedReader out;
    private final Writer in;
    private final ExecutorService reader = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "backend-reader");
        t.setDaemon(true);
        return t;
    });

    private BackendProcess(Process process, Path log) {
        this.process = process;
        this.log = log;
        this.out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        this.in = new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8);
    }

    /**
     * Starts a child that attaches with {@code credential} and serves {@code devices}, or, if
     * {@code silent}, attaches and never serves anything.
     */
    static BackendProcess start(Path socket, Credential credential, boolean silent, List<Device> devices, Path log) {
        return start(socket, credential, silent ? "silent" : "serve", devices, log);
    }

    /**
     * Starts a child in a mode of {@link EchoBackendMain}: {@code serve}, {@code silent}, or
     * {@code serve-late} (its device host handles interrupts for a while before the devices are added).
     */
    static BackendProcess start(Path socket, Credential credential, String mode, List<Device> devices, Path log) {
        String java = ProcessHandle.current().info().command().orElseThrow();
        List<String> command = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-Xmx128m",
                "-XX:+UseSerialGC", "-Xshare:auto", "-cp", System.getProperty("java.class.path"),
                EchoBackendMain.class.getName(), socket.toString(), credential.toHex(), mode));
        for (Device d : devices) {
            SharedRegionInfo r = d.region();
            command.addAll(List.of(d.kind().name(), d.mode().name(), String.valueOf(d.slot()), String.valueOf(r.id().value()),
                    r.name(), String.valueOf(r.sizeBytes()), String.valueOf(r.primary().value()),
                    String.valueOf(r.secondary().value()), String.valueOf(r.primaryGpaBase()), String.valueOf(r.secondaryGpaBase())));
        }
        ProcessBuilder builder = new ProcessBuilder(command);
        builder.redirectError(ProcessBuilder.Redirect.appendTo(log.toFile()));
        try {
            return new BackendProcess(builder.start(), log);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    long pid() {
        return process.pid();
    }

    String readLine() {
        Future<String> next = reader.submit(out::readLine);
        try {
            return next.get(20, TimeUnit.SECONDS);
        } catch (Exception e) {
            throw new IllegalStateException("backend " + process.pid() + " did not answer\n" + log(), e);
        }
    }

    /** Sends one command line and returns the answer line. */
    String command(String line) {
        try {
            in.write(line + "\n");
            in.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("backend " + process.pid() + " is gone\n" + log(), e);
        }
        return readLine();
    }

    /** The child's view of device {@code index} (in the order given to start): status, resets, activations, faults, protocol errors, internal errors, overlaps. */
    long[] stats(int index) {
        String answer = command("stats " + index);
        String[] w = answer.split(" ");
        long[] stats = new long[w.length];
        try {
            for (int i = 0; i < w.length; i++) {
                stats[i] = Long.parseLong(w[i]);
            }
        } catch (NumberFormatException e) {
            throw new IllegalStateException("backend answered '" + answer + "'\n" + log(), e);
        }
        return stats;
    }

    String log() {
        try {
            return Files.exists(log) ? Files.readString(log) : "";
        } catch (IOException e) {
            return "(log unreadable: " + e + ")";
        }
    }

    /** Sends a signal (STOP, CONT) to the child. */
    void signal(String name) {
        try {
            Process kill = new ProcessBuilder("kill", "-" + name, String.valueOf(process.pid())).inheritIO().start();
            if (!kill.waitFor(10, TimeUnit.SECONDS) || kill.exitValue() != 0) {
                throw new IllegalStateException("kill -" + name + " " + process.pid() + " failed");
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    void kill() {
        process.destroyForcibly(); // SIGKILL
        try {
            if (!process.waitFor(20, TimeUnit.SECONDS)) {
                throw new AssertionError("the backend " + process.pid() + " did not die");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        if (process.isAlive()) {
            try {
                command("exit");
                if (!process.waitFor(10, TimeUnit.SECONDS)) {
                    kill();
                }
            } catch (RuntimeException e) {
                kill();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                kill();
            }
        }
        reader.shutdownNow();
        try {
            out.close();
            in.close();
        } catch (IOException ignored) {
            // the pipes are gone with the process
        }
    }
}
