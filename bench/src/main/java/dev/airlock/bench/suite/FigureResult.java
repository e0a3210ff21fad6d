package dev.airlock.bench.suite;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What the suite measured for one figure: one value per measured run, the 1-minute load average
 * read just before each run, and why the figure is missing if it is.
 */
public final class FigureResult {
    private final Catalog.FigureSpec spec;
    private final List<Double> samples = new ArrayList<>();
    private final List<Double> loads = new ArrayList<>();
    private String unavailable;

    /**
     * Creates an empty result.
     *
     * @param spec the figure
     */
    public FigureResult(Catalog.FigureSpec spec) {
        this.spec = spec;
    }

    /**
     * The figure.
     *
     * @return its spec
     */
    public Catalog.FigureSpec spec() {
        return spec;
    }

    /**
     * Adds one measured run.
     *
     * @param value the run's value, in the figure's base unit
     * @param load  the 1-minute load average before the run, or NaN if unknown
     */
    public void add(double value, double load) {
        samples.add(value);
        loads.add(load);
    }

    /**
     * Marks the figure as not measured.
     *
     * @param reason why, one line
     */
    public void markUnavailable(String reason) {
        if (unavailable == null) {
            unavailable = reason;
        }
    }

    /**
     * Whether the figure has at least one measured run and was not marked unavailable.
     *
     * @return true if it has a median
     */
    public boolean available() {
        return unavailable == null && !samples.isEmpty();
    }

    /**
     * Why the figure is missing.
     *
     * @return the reason, or "no runs" if it simply has none, or null if available
     */
    public String unavailableReason() {
        return available() ? null : unavailable != null ? unavailable : "no runs";
    }

    /**
     * The measured runs.
     *
     * @return the values, in run order
     */
    public List<Double> samples() {
        return List.copyOf(samples);
    }

    /**
     * The load averages before each run.
     *
     * @return the values, in run order
     */
    public List<Double> loads() {
        return List.copyOf(loads);
    }

    /**
     * The median over the runs (the mean of the middle two for an even count).
     *
     * @return the median, or NaN if unavailable
     */
    public double median() {
        if (!available()) {
            return Double.NaN;
        }
        double[] s = sorted();
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    /**
     * The smallest run.
     *
     * @return the minimum, or NaN if unavailable
     */
    public double min() {
        return available() ? sorted()[0] : Double.NaN;
    }

    /**
     * The largest run.
     *
     * @return the maximum, or NaN if unavailable
     */
    public double max() {
        return available() ? sorted()[samples.size() - 1] : Double.NaN;
    }

    /**
     * The highest load average seen before any run.
     *
     * @return the maximum, or NaN if none was read
     */
    public double maxLoad() {
        return loads.stream().mapToDouble(Double::doubleValue).filter(d -> !Double.isNaN(d)).max().orElse(Double.NaN);
    }

    private double[] sorted() {
        double[] s = samples.stream().mapToDouble(Double::doubleValue).toArray();
        Arrays.sort(s);
        return s;
    }
}
