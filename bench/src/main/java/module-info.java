/**
 * Benchmarks: the JMH benchmarks with their baselines ({@code dev.airlock.bench}, run from the
 * shaded {@code benchmarks.jar} on the class path), and the {@code airlock bench} suite
 * ({@link dev.airlock.bench.suite.BenchCommand}), a plain harness that runs every figure between
 * separate JVM processes. The suite's package is exported so that the CLI can register the command.
 */
module dev.airlock.bench {
    requires dev.airlock.devices;
    requires dev.airlock.transport;
    requires dev.airlock.vhostuser;
    requires info.picocli;
    requires io.aeron.all;
    requires java.logging;
    requires jmh.core;

    exports dev.airlock.bench.suite;

    opens dev.airlock.bench.suite to info.picocli;
}
