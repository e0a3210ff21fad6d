package dev.airlock.bench.suite;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A child JVM of the suite running {@link SuiteChild}, pinned to one CPU with {@code taskset} when
 * the placement allows it. Its stdout is read line by line on a daemon thread; its stderr goes to
 * a log file that error messages quote.
 */
final class ChildProcess implements AutoCloseable {
    /**
     * JVM flags of every child: a fixed heap and the serial collector, so that no GC or heap
     * resizing threads run beside the measuring thread; native access for the memory module; and
     * the two flags Aeron's Agrona needs on recent JDKs.
     */
    static final List<String> JVM_FLAGS = List.of("-XX:+UseSerialGC", "-Xms256m", "-Xmx256m", "-XX:+AlwaysPreTouch",
            "--enable-native-access=ALL-UNNAMED", "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
            "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED");
    private static final String EOF = "\u0000EOF";
    /** Where children record JFR profiles, or null (set once by {@code --profile} before the suite runs). */
    private static volatile Path profileDir;

    private final String name;
    private final Process process;
    private final Path log;
    private final Writer stdin;
    private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();

    private ChildProcess(String name, Process process, Path log) {
        this.name = name;
        this.process = process;
        this.log = log;
        this.stdin = new OutputStreamWriter(process.getOutputStream(), StandardCharsets.UTF_8);
        Thread reader = new Thread(this::readStdout, "bench-child-" + name);
        reader.setDaemon(true);
        reader.start();
    }

    /**
     * Makes every child started from now on record a JFR profile into {@code dir}.
     *
     * @param dir an existing folder
     */
    static void profileInto(Path dir) {
        profileDir = dir;
    }

    /**
     * Starts {@code SuiteChild} with {@code args} in a new JVM.
     *
     * @param name   for logs and messages
     * @param cpu    the CPU to pin it to, or -1 to leave it unpinned
     * @param args   the child's arguments (role first)
     * @param logDir where its stderr goes
     * @return the running child
     * @throws IOException if it cannot be started
     */
    static ChildProcess start(String name, int cpu, List<String> args, Path logDir) throws IOException {
        List<String> command = new ArrayList<>();
        if (cpu >= 0) {
            command.addAll(List.of("taskset", "-c", String.valueOf(cpu)));
        }
        command.add(ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java")
                .toString()));
        command.addAll(JVM_FLAGS);
        Path profiles = profileDir;
        if (profiles != null) {
            command.add("-XX:StartFlightRecording=settings=profile,filename=" + profiles.resolve(name + "-%p.jfr"));
        }
        command.addAll(List.of("-cp", classPath(), SuiteChild.class.getName()));
        command.addAll(args);
        Path log = logDir.resolve(name + ".log");
        ProcessBuilder builder = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.to(log.toFile()));
        return new ChildProcess(name, builder.start(), log);
    }

    /**
     * The class path for children: this JVM's class path plus every jar of its module path (the
     * suite may run on the module path inside the CLI; children always use the class path).
     *
     * @return the path, entries separated by {@link File#pathSeparator}
     */
    static String classPath() {
        List<String> entries = new ArrayList<>();
        for (String property : List.of("java.class.path", "jdk.module.path")) {
            String value = System.getProperty(property, "");
            for (String entry : value.split(File.pathSeparator)) {
                if (entry.isEmpty()) {
                    continue;
                }
                Path p = Path.of(entry);
                if (property.equals("jdk.module.path") && Files.isDirectory(p)) {
                    try (Stream<Path> jars = Files.list(p)) {
                        jars.filter(j -> j.toString().endsWith(".jar")).sorted().forEach(j -> entries.add(j.toString()));
                    } catch (IOException e) {
                        entries.add(entry);
                    }
                } else {
                    entries.add(entry);
                }
            }
        }
        return String.join(File.pathSeparator, entries);
    }

    private void readStdout() {
        try (BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = out.readLine()) != null) {
                lines.add(line);
            }
        } catch (IOException e) {
            // the process is gone; EOF below
        }
        lines.add(EOF);
    }

    /**
     * The next line the child printed.
     *
     * @param timeout how long to wait
     * @return the line
     * @throws IOException if the child ends or says nothing in time (the message quotes its log)
     * @throws InterruptedException if interrupted
     */
    String nextLine(Duration timeout) throws IOException, InterruptedException {
        String line = lines.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
        if (line == null) {
            throw new IOException(name + " said nothing for " + timeout.toSeconds() + " s" + logTail());
        }
        if (line.equals(EOF)) {
            lines.add(EOF);
            process.waitFor(5, TimeUnit.SECONDS);
            throw new IOException(name + " ended" + (process.isAlive() ? "" : " with exit code " + process.exitValue()) + logTail());
        }
        return line;
    }

    /**
     * Reads lines until one equals or starts with {@code expected}.
     *
     * @param expected the line (or its first word)
     * @param timeout  how long to wait for each line
     * @return the line
     * @throws IOException if the child ends or stalls first, or answers {@code ERROR ...}
     * @throws InterruptedException if interrupted
     */
    String expect(String expected, Duration timeout) throws IOException, InterruptedException {
        while (true) {
            String line = nextLine(timeout);
            if (line.startsWith(expected)) {
                return line;
            }
        }
    }

    /**
     * Sends one line to the child's stdin.
     *
     * @param line the line
     * @throws IOException if the child is gone
     */
    void send(String line) throws IOException {
        stdin.write(line + "\n");
        stdin.flush();
    }

    /**
     * The child's process id.
     *
     * @return the pid
     */
    long pid() {
        return process.pid();
    }

    private String logTail() {
        try {
            String text = Files.exists(log) ? Files.readString(log) : "";
            text = text.strip();
            return text.isEmpty() ? "" : "; its stderr ends: " + text.substring(Math.max(0, text.length() - 1500));
        } catch (IOException e) {
            return "";
        }
    }

    /** Stops the child: SIGTERM, then SIGKILL after 5 s. Peers that serve forever end this way. */
    @Override
    public void close() {
        try {
            stdin.close();
        } catch (IOException ignored) {
            // already gone
        }
        if (process.isAlive()) {
            process.destroy();
            try {
                if (!process.waitFor(5, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    process.waitFor(5, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                process.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }
}
