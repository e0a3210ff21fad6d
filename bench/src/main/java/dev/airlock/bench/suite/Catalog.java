package dev.airlock.bench.suite;

import dev.airlock.transport.TransportKind;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The fixed suite: every figure the harness reports, the scenario (set of processes) that measures
 * it, the baseline it is compared against in the table, and the targets. Ratios are always
 * {@code value / baseline}; a target says whether that ratio must stay below or above its bound.
 */
public final class Catalog {
    /** Size of the bounce-path bulk requests and of the bulk baselines. */
    public static final int BULK_BYTES = 64 * 1024;
    /** Requests in flight in the bounce-path bulk run; its private working set is this many 64 KiB buffers. */
    public static final int BULK_DEPTH = 16;
    /** Payload of the small echo requests and of the Unix-socket request/response. */
    public static final int SMALL_BYTES = 64;
    /** Aeron's small message. */
    public static final int AERON_SMALL_BYTES = 32;
    /** Queue depth of the small-request rate figure. */
    public static final int DEEP_QUEUE = 64;

    /** Reads in flight in the virtio-blk random 4 KiB figure. */
    public static final int BLK_RANDOM_DEPTH = 32;
    /** Reads in flight in the virtio-blk sequential 64 KiB figure. */
    public static final int BLK_SEQUENTIAL_DEPTH = 8;

    /** The two notification modes of the echo runs. */
    public static final List<String> MODES = List.of("doorbell", "polling");

    /**
     * One figure of the suite.
     *
     * @param id       stable name, used in the JSON and by the child processes
     * @param section  "limits", "alternatives" or "airlock"
     * @param label    what the table prints
     * @param unit     the unit
     * @param baseline the id of the figure it is compared with, or null
     * @param scenario the scenario that measures it
     */
    public record FigureSpec(String id, String section, String label, Unit unit, String baseline, String scenario) {
    }

    /** Whether a target bounds its ratio from above or from below. */
    public enum Bound {
        /** The ratio must be at most the bound. */
        AT_MOST("<="),
        /** The ratio must be at least the bound. */
        AT_LEAST(">=");

        private final String symbol;

        Bound(String symbol) {
            this.symbol = symbol;
        }

        /**
         * The comparison as printed.
         *
         * @return {@code "<="} or {@code ">="}
         */
        public String symbol() {
            return symbol;
        }
    }

    /**
     * One ratio that matters, with its target.
     *
     * @param label       what the targets block prints
     * @param figure      the id of the numerator
     * @param baseline    the id of the denominator
     * @param bound       at most or at least
     * @param targetRatio the bound on {@code figure / baseline}
     */
    public record TargetSpec(String label, String figure, String baseline, Bound bound, double targetRatio) {
    }

    private Catalog() {
    }

    /**
     * The id prefix of an echo scenario's figures.
     *
     * @param kind the transport
     * @param mode "doorbell" or "polling"
     * @return for example {@code "echo.shmem-doorbell.polling"}
     */
    public static String echoPrefix(TransportKind kind, String mode) {
        return "echo." + kind.name().toLowerCase(Locale.ROOT).replace('_', '-') + "." + mode;
    }

    /**
     * The scenario name of an echo run.
     *
     * @param kind the transport
     * @param mode "doorbell" or "polling"
     * @return for example {@code "echo-shmem-doorbell-polling"}
     */
    public static String echoScenario(TransportKind kind, String mode) {
        return echoPrefix(kind, mode).replace('.', '-');
    }

    /**
     * The id prefix of a virtio-blk scenario's figures.
     *
     * @param kind the transport
     * @return for example {@code "blk.shmem-doorbell"}
     */
    public static String blkPrefix(TransportKind kind) {
        return "blk." + kind.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    /**
     * The scenario name of a virtio-blk run.
     *
     * @param kind the transport
     * @return for example {@code "blk-shmem-doorbell"}
     */
    public static String blkScenario(TransportKind kind) {
        return blkPrefix(kind).replace('.', '-');
    }

    /**
     * Every figure, in table order.
     *
     * @param bulkWorkingSetBytes the private working set of the bulk run (for the label of its copy baseline)
     * @param llcWorkingSetBytes  the working set of the larger-than-LLC copy
     * @return the figures
     */
    public static List<FigureSpec> figures(long bulkWorkingSetBytes, long llcWorkingSetBytes) {
        List<FigureSpec> f = new ArrayList<>();
        String l = "limits";
        Unit bw = Unit.BYTES_PER_SECOND;
        f.add(new FigureSpec("copy.4k", l, "MemorySegment.copy 4 KiB", bw, null, "copy"));
        f.add(new FigureSpec("copy.64k", l, "MemorySegment.copy 64 KiB", bw, null, "copy"));
        f.add(new FigureSpec("copy.1m", l, "MemorySegment.copy 1 MiB", bw, null, "copy"));
        f.add(new FigureSpec("copy.llc", l, "copy 1 MiB chunks over " + (llcWorkingSetBytes >> 20) + " MiB (> LLC)", bw, null, "copy"));
        f.add(new FigureSpec("copy.bulk-ws", l, "copy 64 KiB chunks over " + (bulkWorkingSetBytes >> 10) + " KiB (bulk set)", bw, null, "copy"));
        f.add(new FigureSpec("pingpong.p50", l, "cache-line ping-pong RTT p50 (2 processes)", Unit.NANOSECONDS, null, "pingpong"));
        f.add(new FigureSpec("pingpong.p99", l, "cache-line ping-pong RTT p99", Unit.NANOSECONDS, null, "pingpong"));

        String a = "alternatives";
        f.add(new FigureSpec("socket.rr.p50", a, "Unix socket 64 B req/resp p50", Unit.NANOSECONDS, "pingpong.p50", "socket-rr"));
        f.add(new FigureSpec("socket.rr.p99", a, "Unix socket 64 B req/resp p99", Unit.NANOSECONDS, "pingpong.p99", "socket-rr"));
        f.add(new FigureSpec("socket.rr.rate", a, "Unix socket 64 B req/resp rate", Unit.OPS_PER_SECOND, null, "socket-rr"));
        f.add(new FigureSpec("socket.bulk", a, "Unix socket 64 KiB bulk", bw, "copy.64k", "socket-bulk"));
        f.add(new FigureSpec("aeron.ping.p50", a, "Aeron IPC 32 B ping-pong p50", Unit.NANOSECONDS, "pingpong.p50", "aeron-ping"));
        f.add(new FigureSpec("aeron.ping.p99", a, "Aeron IPC 32 B ping-pong p99", Unit.NANOSECONDS, "pingpong.p99", "aeron-ping"));
        f.add(new FigureSpec("aeron.ping.rate", a, "Aeron IPC 32 B ping-pong rate", Unit.OPS_PER_SECOND, null, "aeron-ping"));
        f.add(new FigureSpec("aeron.rate32", a, "Aeron IPC 32 B message rate", Unit.OPS_PER_SECOND, null, "aeron-rate32"));
        f.add(new FigureSpec("aeron.bulk64k", a, "Aeron IPC 64 KiB throughput", bw, "copy.64k", "aeron-bulk64k"));

        for (TransportKind kind : TransportKind.hosted()) {
            for (String mode : MODES) {
                String p = echoPrefix(kind, mode);
                String s = echoScenario(kind, mode);
                String name = "echo " + kind.name().toLowerCase(Locale.ROOT).replace('_', '-') + " " + mode;
                boolean polled = mode.equals("polling");
                String rr = polled ? "aeron.ping" : "socket.rr";
                f.add(new FigureSpec(p + ".rtt.p50", "airlock", name + " 64 B RTT p50", Unit.NANOSECONDS, rr + ".p50", s));
                f.add(new FigureSpec(p + ".rtt.p99", "airlock", name + " 64 B RTT p99", Unit.NANOSECONDS, rr + ".p99", s));
                f.add(new FigureSpec(p + ".rate.qd1", "airlock", name + " 64 B rate, depth 1", Unit.OPS_PER_SECOND, rr + ".rate", s));
                f.add(new FigureSpec(p + ".rate.qd64", "airlock", name + " 64 B rate, depth " + DEEP_QUEUE, Unit.OPS_PER_SECOND,
                        "aeron.rate32", s));
                f.add(new FigureSpec(p + ".bulk64k", "airlock", name + " 64 KiB bounce bulk, depth " + BULK_DEPTH, bw,
                        "aeron.bulk64k", s));
            }
        }
        for (TransportKind kind : TransportKind.hosted()) {
            String p = blkPrefix(kind);
            String s = blkScenario(kind);
            String name = "blk " + kind.name().toLowerCase(Locale.ROOT).replace('_', '-');
            f.add(new FigureSpec(p + ".randread4k", "airlock", name + " 4 KiB random read, depth " + BLK_RANDOM_DEPTH,
                    Unit.OPS_PER_SECOND, null, s));
            f.add(new FigureSpec(p + ".seqread64k", "airlock", name + " 64 KiB sequential read, depth " + BLK_SEQUENTIAL_DEPTH, bw,
                    echoPrefix(kind, "doorbell") + ".bulk64k", s));
        }
        return f;
    }

    /**
     * The ratios that matter, with their targets (from the bench issue and the earlier transport issue).
     *
     * @return the targets, in print order
     */
    public static List<TargetSpec> targets() {
        List<TargetSpec> t = new ArrayList<>();
        for (TransportKind kind : TransportKind.hosted()) {
            String db = echoPrefix(kind, "doorbell");
            String poll = echoPrefix(kind, "polling");
            String k = kind.name().toLowerCase(Locale.ROOT).replace('_', '-');
            t.add(new TargetSpec(k + ": polled RTT p50 / Aeron ping p50", poll + ".rtt.p50", "aeron.ping.p50", Bound.AT_MOST, 1.0));
            t.add(new TargetSpec(k + ": doorbell RTT p50 / Unix-socket req/resp p50", db + ".rtt.p50", "socket.rr.p50",
                    Bound.AT_MOST, 1.0));
            t.add(new TargetSpec(k + ": polled RTT p50 / cache-line ping-pong p50", poll + ".rtt.p50", "pingpong.p50",
                    Bound.AT_MOST, 5.0));
            for (String mode : MODES) {
                String p = echoPrefix(kind, mode);
                t.add(new TargetSpec(k + " " + mode + ": bounce bulk / Aeron 64 KiB", p + ".bulk64k", "aeron.bulk64k",
                        Bound.AT_LEAST, 3.0));
                t.add(new TargetSpec(k + " " + mode + ": bounce bulk / copy of the same working set", p + ".bulk64k",
                        "copy.bulk-ws", Bound.AT_LEAST, 0.5));
            }
            t.add(new TargetSpec(k + ": polled depth-64 rate / Aeron 32 B message rate", poll + ".rate.qd64", "aeron.rate32",
                    Bound.AT_LEAST, 0.5));
        }
        return t;
    }
}
