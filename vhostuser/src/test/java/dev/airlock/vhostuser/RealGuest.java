package dev.airlock.vhostuser;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Runs /work/shared/realguest/boot.sh (a throw-away Linux guest under QEMU) against our back-ends. */
final class RealGuest {
    /** {@code ../shared/realguest} beside the project (tests run in the module's folder), or {@code -Dairlock.realguest}. */
    static final Path HOME = Path.of(System.getProperty("airlock.realguest",
            Path.of(System.getProperty("user.dir"), "..", "..", "shared", "realguest").normalize().toString()));
    static final Path BOOT = HOME.resolve("boot.sh");
    static final Path EXAMPLES = HOME.resolve("examples");

    /** What a boot printed and returned. */
    record Result(int exitCode, String stdout, String stderr, double seconds) {
        @Override
        public String toString() {
            return "boot.sh exit " + exitCode + " after " + String.format("%.1f", seconds) + " s\n--- stdout\n" + stdout
                    + "\n--- stderr\n" + stderr;
        }
    }

    private RealGuest() {
    }

    /** Skips the test unless boot.sh and the kernel cache are installed. */
    static void assumeInstalled() {
        assumeTrue(Files.isExecutable(BOOT), "realguest boot.sh not installed at " + BOOT);
        String cacheEnv = System.getenv("REALGUEST_CACHE");
        Path cache = cacheEnv != null ? Path.of(cacheEnv) : Path.of(System.getProperty("user.home"), ".cache", "realguest");
        assumeTrue(Files.isRegularFile(cache.resolve("build.env")), "realguest kernel cache missing at " + cache);
    }

    /** Runs boot.sh with the given arguments and waits at most {@code timeoutSeconds} + 30 s. */
    static Result boot(Path workDir, int timeoutSeconds, String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(BOOT.toString());
        command.add("--timeout");
        command.add(Integer.toString(timeoutSeconds));
        command.addAll(List.of(args));
        Path out = workDir.resolve("boot.out");
        Path err = workDir.resolve("boot.err");
        long start = System.nanoTime();
        Process p = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        if (!p.waitFor(timeoutSeconds + 30L, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            p.waitFor();
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        String stderr = Files.readString(err, StandardCharsets.UTF_8);
        if (p.exitValue() == 124) {
            stderr += "\n--- this JVM's threads at the timeout (the back-end under test runs here)\n" + threadDump();
        }
        Result r = new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8), stderr, seconds);
        System.out.println("[realguest] " + String.join(" ", command) + "\n" + r);
        return r;
    }

    /** Every live thread's stack, for a guest that timed out: shows where the back-end waits. */
    private static String threadDump() {
        StringBuilder b = new StringBuilder();
        for (var e : Thread.getAllStackTraces().entrySet()) {
            b.append('"').append(e.getKey().getName()).append("\" ").append(e.getKey().getState()).append('\n');
            for (StackTraceElement f : e.getValue()) {
                b.append("    at ").append(f).append('\n');
            }
        }
        return b.toString();
    }
}
