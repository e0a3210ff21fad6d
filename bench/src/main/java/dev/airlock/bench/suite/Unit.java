package dev.airlock.bench.suite;

import java.util.Locale;

/**
 * The unit of a figure. Values are kept in the base unit (nanoseconds, operations per second,
 * bytes per second) in the JSON and scaled only for the table.
 */
public enum Unit {
    /** A latency in nanoseconds; lower is better. */
    NANOSECONDS("ns"),
    /** A rate in requests or messages per second; higher is better. */
    OPS_PER_SECOND("ops/s"),
    /** A throughput in bytes per second; higher is better. */
    BYTES_PER_SECOND("B/s");

    private final String symbol;

    Unit(String symbol) {
        this.symbol = symbol;
    }

    /**
     * The symbol of the base unit, as written in the JSON.
     *
     * @return for example {@code "ns"}
     */
    public String symbol() {
        return symbol;
    }

    /**
     * Formats a value in this unit for the table, scaled to about three significant digits.
     *
     * @param value the value in the base unit
     * @return for example {@code "48.6 us"}, {@code "1.23 M/s"} or {@code "5.21 GB/s"}
     */
    public String format(double value) {
        Scale s = scaleOf(value);
        return scaled(value / s.divisor) + " " + s.suffix;
    }

    /**
     * Formats a range at the scale of a reference value, so a spread reads in the same unit as its
     * median.
     *
     * @param min       the low end, in the base unit
     * @param max       the high end, in the base unit
     * @param reference the value whose scale is used (the median)
     * @return for example {@code "47.1-52.0 us"}, or each end in its own scale if the range spans
     *         three orders of magnitude or more ({@code "391 ns-33.7 ms"})
     */
    public String formatRange(double min, double max, double reference) {
        Scale s = scaleOf(reference);
        if (!scaleOf(min).equals(s) && !scaleOf(max).equals(s) || max / min > 1000) { // too wide for one scale
            return format(min) + "-" + format(max);
        }
        return scaled(min / s.divisor) + "-" + scaled(max / s.divisor) + " " + s.suffix;
    }

    private record Scale(double divisor, String suffix) {
    }

    private Scale scaleOf(double value) {
        return switch (this) {
            case NANOSECONDS -> value >= 1e6 ? new Scale(1e6, "ms") : value >= 1e4 ? new Scale(1e3, "us") : new Scale(1, "ns");
            case OPS_PER_SECOND -> value >= 1e6 ? new Scale(1e6, "M/s") : value >= 1e3 ? new Scale(1e3, "K/s") : new Scale(1, "/s");
            case BYTES_PER_SECOND -> value >= 1e9 ? new Scale(1e9, "GB/s") : new Scale(1e6, "MB/s");
        };
    }

    private static String scaled(double v) {
        return v >= 100 ? String.format(Locale.ROOT, "%.0f", v) : v >= 10 ? String.format(Locale.ROOT, "%.1f", v)
                : String.format(Locale.ROOT, "%.2f", v);
    }
}
