package dev.airlock.bench.suite;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;

/**
 * {@code airlock bench [--quick] [--json FILE]}: runs the fixed suite of the {@link Catalog} and
 * prints one table with, for every figure, the median and spread over several runs and its ratio
 * to its baseline, then the targets block. Register it as a subcommand of the CLI, or run it
 * alone with {@link BenchMain}.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, version = "airlock bench 0.1.0", description = {
    "Runs the benchmark suite and prints one table (and JSON with --json).",
    "",
    "Every figure runs between two separate JVM processes pinned to different",
    "CPUs with taskset (copy: one process): MemorySegment.copy and a",
    "cross-process cache-line ping-pong (the limits); a Unix-domain socket and",
    "Aeron IPC (what a Java user would pick instead); the Airlock echo device",
    "and virtio-blk on the multi-process runtime, per transport (echo: doorbell",
    "and polling modes). Each figure gets warm-up runs, then several measured",
    "runs: the table shows the median, the min-max spread and the ratio to the",
    "baseline measured in the same run, then the targets. --quick takes under",
    "two minutes, the full run under ten."})
public final class BenchCommand implements Callable<Integer> {
    /** Exit code when a scenario failed (the others are still reported); 0 otherwise, whatever the targets say. */
    public static final int EXIT_SCENARIO_FAILED = 1;

    @Spec
    CommandSpec spec;

    @Option(names = "--quick", description = "Fewer and shorter runs (under two minutes).")
    boolean quick;

    @Option(names = "--json", paramLabel = "FILE", description = "Also write the results as JSON to FILE.")
    Path json;

    @Option(names = "--runs", description = "Measured runs per figure (default: 5 with --quick, else 10).")
    Integer runs;

    @Option(names = "--warmups", description = "Warm-up runs per figure (default: 3 with --quick, else 2).")
    Integer warmups;

    @Option(names = "--run-ms", description = "Length of each run in ms (default: 200 with --quick, else 1000).")
    Long runMillis;

    @Option(names = "--only", paramLabel = "REGEX",
            description = "Run only the scenarios whose name matches, e.g. 'copy|socket-rr|echo-shmem'; the rest are n/a.")
    Pattern only;

    @Option(names = "--no-pin", description = "Do not pin the child processes to CPUs (for comparison).")
    boolean noPin;

    @Option(names = "--profile", paramLabel = "DIR",
            description = "Record a JFR profile of every child JVM into DIR (NAME-PID.jfr; read with 'jfr print'). Slows the run.")
    java.nio.file.Path profileDir;

    /** Creates the command (picocli fills in the options). */
    public BenchCommand() {
    }

    /**
     * The options as a suite run.
     *
     * @return what to run
     */
    public Suite.Options options() {
        Suite.Options base = quick ? Suite.Options.QUICK : Suite.Options.FULL;
        RunPlan p = base.plan();
        RunPlan plan = new RunPlan(warmups != null ? warmups : p.warmups(), runs != null ? runs : p.runs(),
                runMillis != null ? runMillis : p.runMillis());
        boolean custom = !plan.equals(p) || only != null;
        return new Suite.Options(custom || noPin ? base.name() + ", custom" : base.name(), plan, only, !noPin);
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        if (profileDir != null) {
            java.nio.file.Files.createDirectories(profileDir);
            ChildProcess.profileInto(profileDir.toAbsolutePath());
            out.println("JFR profiles of the child JVMs go to " + profileDir.toAbsolutePath());
        }
        Suite suite = new Suite(options(), out);
        Report report = suite.run();
        out.println();
        report.print(out);
        if (json != null) {
            report.writeJson(json);
            out.println("JSON written to " + json);
        }
        out.flush();
        return suite.failedScenarios().isEmpty() ? 0 : EXIT_SCENARIO_FAILED;
    }
}
