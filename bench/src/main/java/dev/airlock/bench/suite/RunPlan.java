package dev.airlock.bench.suite;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * How a measuring child process runs each figure: {@code warmups} unreported runs, then
 * {@code runs} measured runs of {@code runMillis} each. Before each measured run it reads the
 * 1-minute load average and prints {@code LOAD value}; each run prints {@code RUN figureId value}
 * per figure it measures. The harness reads those lines from the child's stdout.
 *
 * @param warmups   unreported runs first (JIT, caches, page faults)
 * @param runs      measured runs, at least 1
 * @param runMillis length of each run
 */
public record RunPlan(int warmups, int runs, long runMillis) {
    /** The line prefix of a measured value. */
    public static final String RUN = "RUN ";
    /** The line prefix of a load reading. */
    public static final String LOAD = "LOAD ";
    /** The line a measuring child prints when it has finished. */
    public static final String DONE = "DONE";

    /**
     * Checks the plan.
     *
     * @throws IllegalArgumentException if a count is negative, there is no measured run, or a run has no length
     */
    public RunPlan {
        if (warmups < 0 || runs < 1 || runMillis < 1) {
            throw new IllegalArgumentException("bad run plan: " + warmups + " warm-ups, " + runs + " runs of " + runMillis + " ms");
        }
    }

    /** One run of a workload. */
    @FunctionalInterface
    public interface Body {
        /**
         * Runs the workload for about {@code durationNs}.
         *
         * @param durationNs how long
         * @param report     receives the figures of this run (ignored during warm-up)
         * @throws Exception if the workload fails
         */
        void run(long durationNs, Reporter report) throws Exception;
    }

    /** Receives the values of one run. */
    @FunctionalInterface
    public interface Reporter {
        /**
         * Reports one figure's value for this run.
         *
         * @param figureId the figure
         * @param value    the value in its base unit
         */
        void value(String figureId, double value);
    }

    /**
     * Runs the warm-ups and the measured runs of one workload, printing each measured value.
     *
     * @param out  the child's stdout
     * @param body the workload
     * @throws Exception if the workload fails
     */
    public void execute(PrintStream out, Body body) throws Exception {
        long durationNs = runMillis * 1_000_000L;
        for (int i = 0; i < warmups; i++) {
            body.run(durationNs, (id, v) -> { });
        }
        for (int i = 0; i < runs; i++) {
            out.println(LOAD + loadAverage());
            body.run(durationNs, (id, v) -> out.println(RUN + id + " " + v));
        }
    }

    /**
     * The plan as child-process arguments.
     *
     * @return three arguments
     */
    public List<String> toArgs() {
        return List.of(String.valueOf(warmups), String.valueOf(runs), String.valueOf(runMillis));
    }

    /**
     * Reads a plan from child-process arguments.
     *
     * @param args the arguments
     * @param from the index of the first of the three
     * @return the plan
     */
    public static RunPlan fromArgs(String[] args, int from) {
        return new RunPlan(Integer.parseInt(args[from]), Integer.parseInt(args[from + 1]), Long.parseLong(args[from + 2]));
    }

    /**
     * The 1-minute load average from {@code /proc/loadavg}.
     *
     * @return the value, or NaN where the file cannot be read
     */
    public static double loadAverage() {
        try {
            return Double.parseDouble(Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+")[0]);
        } catch (IOException | RuntimeException e) {
            return Double.NaN;
        }
    }

    /**
     * Percentiles of latency samples.
     *
     * @param samples the samples; sorted in place
     * @param count   how many of them are valid
     * @param p       the percentile, 0 to 100
     * @return the sample at that rank (nearest-rank), or NaN if there are none
     */
    public static double percentile(long[] samples, int count, double p) {
        if (count == 0) {
            return Double.NaN;
        }
        Arrays.sort(samples, 0, count);
        int rank = (int) Math.ceil(p / 100.0 * count);
        return samples[Math.min(count - 1, Math.max(0, rank - 1))];
    }
}
