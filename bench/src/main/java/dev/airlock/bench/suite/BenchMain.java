package dev.airlock.bench.suite;

import picocli.CommandLine;

/**
 * Runs {@link BenchCommand} on its own:
 * {@code java --enable-native-access=ALL-UNNAMED -cp bench/target/benchmarks.jar dev.airlock.bench.suite.BenchMain --quick}.
 */
public final class BenchMain {
    private BenchMain() {
    }

    /**
     * Runs the suite with the command-line options of {@code airlock bench}.
     *
     * @param args the options
     */
    public static void main(String[] args) {
        System.exit(new CommandLine(new BenchCommand()).execute(args));
    }
}
