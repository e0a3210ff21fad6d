package dev.airlock.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Starts {@code airlock} subcommands as child processes of this one, with the same JDK, module or
 * class path and native-access grant (for {@code airlock demo --processes}).
 */
final class SelfLauncher {
    private SelfLauncher() {
    }

    /** The command line that runs {@code airlock} the way this JVM runs it. */
    static List<String> airlock() {
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        String modulePath = System.getProperty("jdk.module.path");
        boolean onModulePath = SelfLauncher.class.getModule().isNamed() && modulePath != null;
        cmd.add(onModulePath ? "--enable-native-access=dev.airlock.memory" : "--enable-native-access=ALL-UNNAMED");
        cmd.add("-XX:+UseSerialGC");
        cmd.add("-Xmx512m");
        if (onModulePath) {
            cmd.addAll(List.of("-p", modulePath, "-m", "dev.airlock.cli/" + Airlock.class.getName()));
        } else {
            cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Airlock.class.getName()));
        }
        return cmd;
    }

    /**
     * Starts {@code airlock ARGS...}; its stderr goes to {@code log}.
     *
     * @param log  where the child's stderr goes (appended)
     * @param args the subcommand and its arguments
     * @return the process (stdout is a pipe)
     */
    static Process start(Path log, String... args) {
        List<String> cmd = airlock();
        cmd.addAll(List.of(args));
        try {
            return new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.appendTo(log.toFile())).start();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + String.join(" ", cmd), e);
        }
    }
}
