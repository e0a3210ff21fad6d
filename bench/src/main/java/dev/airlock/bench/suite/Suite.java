package dev.airlock.bench.suite;

import dev.airlock.transport.TransportKind;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The harness: runs every scenario of the {@link Catalog} in its own child processes, one after
 * the other, and collects the figures into a {@link Report}. A scenario that fails marks its
 * figures not available (with the reason) and the suite goes on.
 */
public final class Suite {
    /** Longest silence allowed from a measuring child (a run plus its setup). */
    private static final Duration STALL = Duration.ofSeconds(60);

    /**
     * What to run.
     *
     * @param name  "quick", "full" or a custom name, for the notes
     * @param plan  warm-ups, runs and run length of every figure
     * @param only  a regular expression; only scenarios whose name it finds run (null for all)
     * @param pin   pin the children to CPUs with taskset where possible
     */
    public record Options(String name, RunPlan plan, Pattern only, boolean pin) {
        /**
         * {@code --quick}: three warm-ups (enough for C2 to compile the doorbell path's threads) and
         * five runs of 200 ms per figure; about a minute here.
         */
        public static final Options QUICK = new Options("quick", new RunPlan(3, 5, 200), null, true);
        /** The full run: two warm-ups and ten runs of 1 s per figure; about seven minutes here. */
        public static final Options FULL = new Options("full", new RunPlan(2, 10, 1000), null, true);
    }

    private final Options options;
    private final PrintWriter progress;
    private final Placement placement;
    private final long llcWorkingSet;
    private final long bulkWorkingSet = (long) Catalog.BULK_DEPTH * Catalog.BULK_BYTES;
    private final Map<String, FigureResult> figures = new LinkedHashMap<>();
    private final List<String> failed = new ArrayList<>();
    private double load = Double.NaN;

    /**
     * Prepares a run.
     *
     * @param options  what to run
     * @param progress where to print one line per scenario as it starts and ends
     */
    public Suite(Options options, PrintWriter progress) {
        this.options = options;
        this.progress = progress;
        this.placement = options.pin() ? Placement.detect() : Placement.unpinned("unpinned (--no-pin)");
        this.llcWorkingSet = Math.max(2 * lastLevelCacheBytes(), 64L << 20);
        for (Catalog.FigureSpec spec : Catalog.figures(bulkWorkingSet, llcWorkingSet)) {
            figures.put(spec.id(), new FigureResult(spec));
        }
    }

    /**
     * Runs the suite.
     *
     * @return the report
     * @throws IOException if the scratch directory cannot be made
     */
    public Report run() throws IOException {
        long start = System.nanoTime();
        QuietLogs.quietHypervisorLogs();
        Path dir = Files.createTempDirectory("airlock-bench");
        try {
            List<String> scenarios = new ArrayList<>(List.of("copy", "pingpong", "socket-rr", "socket-bulk", "aeron-ping",
                    "aeron-rate32", "aeron-bulk64k"));
            for (TransportKind kind : TransportKind.hosted()) {
                for (String mode : Catalog.MODES) {
                    scenarios.add(Catalog.echoScenario(kind, mode));
                }
            }
            for (TransportKind kind : TransportKind.hosted()) {
                scenarios.add(Catalog.blkScenario(kind));
            }
            for (String scenario : scenarios) {
                if (options.only() != null && !options.only().matcher(scenario).find()) {
                    mark(scenario, "not selected (--only " + options.only() + ")");
                    continue;
                }
                runScenario(scenario, dir);
            }
        } finally {
            deleteTree(dir);
        }
        return new Report(List.copyOf(figures.values()), Catalog.targets(), notes(), System.nanoTime() - start);
    }

    private void runScenario(String scenario, Path dir) {
        if (scenario.endsWith("-polling") && !Polling.available()) {
            mark(scenario, Polling.UNAVAILABLE);
            progress.printf("%-36s skipped: %s%n", scenario, Polling.UNAVAILABLE);
            progress.flush();
            return;
        }
        long t0 = System.nanoTime();
        progress.printf(Locale.ROOT, "%-36s load %.2f ... ", scenario, RunPlan.loadAverage());
        progress.flush();
        try {
            Path scratch = Files.createDirectories(dir.resolve(scenario));
            run(scenario, scratch);
            progress.printf(Locale.ROOT, "%.1f s%n", (System.nanoTime() - t0) / 1e9);
        } catch (Exception | AssertionError e) {
            String reason = "failed: " + e.getMessage();
            mark(scenario, reason.length() > 300 ? reason.substring(0, 300) + "..." : reason);
            failed.add(scenario);
            progress.printf("FAILED%n  %s%n", e);
        }
        progress.flush();
    }

    /**
     * The scenarios that failed in the last {@link #run()} (their figures are not available).
     *
     * @return the scenario names
     */
    public List<String> failedScenarios() {
        return List.copyOf(failed);
    }

    private void run(String scenario, Path scratch) throws Exception {
        RunPlan plan = options.plan();
        List<String> p = plan.toArgs();
        switch (scenario) {
            case "copy" -> measure(scenario, scratch, concat(List.of("copy"), p, List.of(String.valueOf(llcWorkingSet),
                    String.valueOf(bulkWorkingSet))), null);
            case "pingpong" -> {
                Path lines = sharedMemoryDir().resolve("airlock-bench-" + ProcessHandle.current().pid() + "-lines");
                Files.write(lines, new byte[(int) BaselineWorkloads.LINES_BYTES]);
                try {
                    measure(scenario, scratch, concat(List.of("pingpong"), p, List.of(lines.toString())),
                            List.of("pingpong-peer", lines.toString()));
                } finally {
                    Files.deleteIfExists(lines);
                }
            }
            case "socket-rr", "socket-bulk" -> {
                Path socket = scratch.resolve("s.sock");
                measure(scenario, scratch, concat(List.of(scenario), p, List.of(socket.toString())),
                        List.of("socket-peer", socket.toString(), String.valueOf(scenario.equals("socket-bulk"))));
            }
            case "aeron-ping", "aeron-rate32", "aeron-bulk64k" -> {
                Path aeronDir = sharedMemoryDir().resolve("airlock-bench-aeron-" + ProcessHandle.current().pid() + "-" + scenario);
                String bytes = scenario.equals("aeron-ping") ? "0" : scenario.equals("aeron-rate32")
                        ? String.valueOf(Catalog.AERON_SMALL_BYTES) : String.valueOf(Catalog.BULK_BYTES);
                List<String> measuring = scenario.equals("aeron-ping") ? concat(List.of("aeron-ping"), p, List.of(aeronDir.toString()))
                        : concat(List.of("aeron-subscribe"), p, List.of(aeronDir.toString(), bytes));
                try {
                    measure(scenario, scratch, measuring, List.of("aeron-peer", aeronDir.toString(), bytes));
                } finally {
                    deleteTree(aeronDir);
                }
            }
            default -> new EchoScenario(scenario, scratch, placement, plan, this::accept).run();
        }
    }

    /** Starts the peer (if any), then the measuring child, and reads the measuring child's lines until DONE. */
    private void measure(String scenario, Path scratch, List<String> measuringArgs, List<String> peerArgs) throws Exception {
        try (ChildProcess _ = peerArgs == null ? null : ChildProcess.start(scenario + "-peer", placement.peerCpu(), peerArgs, scratch);
             ChildProcess measuring = ChildProcess.start(scenario, placement.measureCpu(), measuringArgs, scratch)) {
            String line;
            while (!(line = measuring.nextLine(STALL)).equals(RunPlan.DONE)) {
                accept(line);
            }
        }
    }

    /**
     * Takes one line of a measuring child: a load reading or a measured value.
     *
     * @param line the line
     */
    void accept(String line) {
        if (line.startsWith(RunPlan.LOAD)) {
            load = Double.parseDouble(line.substring(RunPlan.LOAD.length()));
        } else if (line.startsWith(RunPlan.RUN)) {
            String[] w = line.split(" ");
            FigureResult f = figures.get(w[1]);
            if (f == null) {
                throw new IllegalStateException("a child reported an unknown figure: " + line);
            }
            f.add(Double.parseDouble(w[2]), load);
        }
    }

    private void mark(String scenario, String reason) {
        figures.values().stream().filter(f -> f.spec().scenario().equals(scenario)).forEach(f -> f.markUnavailable(reason));
    }

    private List<String> notes() {
        List<String> n = new ArrayList<>();
        RunPlan plan = options.plan();
        n.add(String.format(Locale.ROOT, "airlock bench (%s): per figure %d warm-up + %d measured runs of %d ms; median and "
                + "min-max over the runs", options.name(), plan.warmups(), plan.runs(), plan.runMillis()));
        n.add("every figure runs between two JVM processes (copy: one) spawned for its scenario; Airlock echo figures run on the"
                + " multi-process runtime: hypervisor daemon in the harness, device backend JVM and driver (secondary VM) JVM");
        n.add("placement: " + placement.why());
        n.add("child JVMs: " + String.join(" ", ChildProcess.JVM_FLAGS) + " (serial GC and a fixed, pre-touched heap:"
                + " no concurrent GC threads beside the measuring thread)");
        n.add("machine: " + Runtime.getRuntime().availableProcessors() + " CPUs, last-level cache " + (lastLevelCacheBytes() >> 20)
                + " MiB, Java " + Runtime.version() + "; load column = highest 1-minute load average read before a run");
        n.add("echo: 64 B out + 64 B in per request, bounce DMA through the swiotlb pool in the shared region; bulk: 64 KiB"
                + " out-only requests, " + Catalog.BULK_DEPTH + " in flight (" + (bulkWorkingSet >> 10) + " KiB private working set)");
        n.add("blk: read-only virtio-blk over a " + (BlkWorkloads.IMAGE_BYTES >> 20) + " MiB image in the page cache, doorbell mode;"
                + " reads into private RAM through BlockDevice (its own driver thread), bounced through the pool");
        n.add("Aeron " + io.aeron.AeronVersion.VERSION + ": " + AeronWorkloads.CHANNEL + ", defaults otherwise; media driver"
                + " embedded in the peer process (SHARED threading, sleeping 1 ms when idle: its conductor advances the IPC"
                + " publisher limit, so the throughput figures depend on its wake-ups); 64 KiB messages reassembled with"
                + " FragmentAssembler");
        if (!failed.isEmpty()) {
            n.add("FAILED scenarios (their figures are n/a, the reason is in the table): " + String.join(", ", failed));
        }
        return n;
    }

    private static List<String> concat(List<String> a, List<String> b, List<String> c) {
        List<String> all = new ArrayList<>(a);
        all.addAll(b);
        all.addAll(c);
        return all;
    }

    private static Path sharedMemoryDir() {
        Path shm = Path.of("/dev/shm");
        return Files.isDirectory(shm) && Files.isWritable(shm) ? shm : Path.of(System.getProperty("java.io.tmpdir"));
    }

    /**
     * The size of the highest-level CPU cache of CPU 0, from sysfs.
     *
     * @return bytes, or 32 MiB if sysfs does not say
     */
    static long lastLevelCacheBytes() {
        long best = 0;
        int bestLevel = -1;
        try (Stream<Path> caches = Files.list(Path.of("/sys/devices/system/cpu/cpu0/cache"))) {
            for (Path c : caches.filter(p -> p.getFileName().toString().startsWith("index")).toList()) {
                int level = Integer.parseInt(Files.readString(c.resolve("level")).trim());
                String size = Files.readString(c.resolve("size")).trim();
                long bytes = size.endsWith("K") ? Long.parseLong(size.substring(0, size.length() - 1)) << 10
                        : size.endsWith("M") ? Long.parseLong(size.substring(0, size.length() - 1)) << 20 : Long.parseLong(size);
                if (level > bestLevel || (level == bestLevel && bytes > best)) {
                    bestLevel = level;
                    best = bytes;
                }
            }
        } catch (IOException | RuntimeException e) {
            return 32L << 20;
        }
        return best > 0 ? best : 32L << 20;
    }

    static void deleteTree(Path root) {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException ignored) {
            // best effort: a scratch file left in /tmp or /dev/shm
        }
    }
}
