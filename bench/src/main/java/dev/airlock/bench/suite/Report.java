package dev.airlock.bench.suite;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The suite's results: the table (name, median, min-max spread over the runs, baseline, ratio, load),
 * the targets block, the notes on how the run was set up, and the same data as JSON.
 *
 * @param figures every figure, measured or not, in table order
 * @param targets the ratios that matter
 * @param notes   how the run was set up (placement, JVM flags, runs, machine), one line each
 * @param wallNs  how long the whole suite took
 */
public record Report(List<FigureResult> figures, List<Catalog.TargetSpec> targets, List<String> notes, long wallNs) {
    /**
     * The result of a figure.
     *
     * @param id the figure id
     * @return the result, or null if the suite has no such figure
     */
    public FigureResult figure(String id) {
        return figures.stream().filter(f -> f.spec().id().equals(id)).findFirst().orElse(null);
    }

    /**
     * {@code figure / baseline} of the medians.
     *
     * @param figure   the numerator's id
     * @param baseline the denominator's id, or null
     * @return the ratio, or NaN if either is missing
     */
    public double ratio(String figure, String baseline) {
        FigureResult f = figure(figure);
        FigureResult b = baseline == null ? null : figure(baseline);
        if (f == null || b == null || !f.available() || !b.available() || b.median() == 0) {
            return Double.NaN;
        }
        return f.median() / b.median();
    }

    /**
     * Prints the notes, the table and the targets block.
     *
     * @param out where to print
     */
    public void print(PrintWriter out) {
        notes.forEach(n -> out.println("# " + n));
        out.printf(Locale.ROOT, "%-58s %11s %21s  %-36s %8s %5s%n", "figure", "median", "spread (min-max)", "baseline",
                "ratio", "load");
        String section = "";
        for (FigureResult f : figures) {
            Catalog.FigureSpec s = f.spec();
            if (!s.section().equals(section)) {
                section = s.section();
                out.println("-- " + section);
            }
            if (!f.available()) {
                out.printf(Locale.ROOT, "%-58s %11s  (%s)%n", s.label(), "n/a", f.unavailableReason());
                continue;
            }
            double r = ratio(s.id(), s.baseline());
            out.printf(Locale.ROOT, "%-58s %11s %21s  %-36s %8s %5s%n", s.label(), s.unit().format(f.median()),
                    s.unit().formatRange(f.min(), f.max(), f.median()), s.baseline() == null ? "-" : s.baseline(),
                    Double.isNaN(r) ? "-" : String.format(Locale.ROOT, "%.3f", r), load(f.maxLoad()));
        }
        out.println();
        out.println("Targets (ratio = figure median / baseline median, both from this run):");
        for (Catalog.TargetSpec t : targets) {
            double r = ratio(t.figure(), t.baseline());
            out.printf(Locale.ROOT, "  %-72s %8s  target %s %.1f  %s%n", t.label(), Double.isNaN(r) ? "n/a"
                    : String.format(Locale.ROOT, "%.3f", r), t.bound().symbol(), t.targetRatio(), verdict(t, r));
        }
        out.printf(Locale.ROOT, "wall time %.1f s%n", wallNs / 1e9);
        out.flush();
    }

    private static String load(double load) {
        return Double.isNaN(load) ? "-" : String.format(Locale.ROOT, "%.2f", load);
    }

    private static String verdict(Catalog.TargetSpec t, double r) {
        if (Double.isNaN(r)) {
            return "not measured";
        }
        boolean met = t.bound() == Catalog.Bound.AT_MOST ? r <= t.targetRatio() : r >= t.targetRatio();
        return met ? "met" : "NOT met";
    }

    /**
     * Writes the report as JSON: notes, figures (with every run, its load, median, min, max,
     * baseline and ratio, or why it is unavailable) and targets.
     *
     * @param file where to write
     * @throws IOException if it cannot be written
     */
    public void writeJson(Path file) throws IOException {
        StringBuilder j = new StringBuilder(16384);
        j.append("{\n  \"wallSeconds\": ").append(num(wallNs / 1e9)).append(",\n  \"notes\": [");
        for (int i = 0; i < notes.size(); i++) {
            j.append(i == 0 ? "\n    " : ",\n    ").append(str(notes.get(i)));
        }
        j.append("\n  ],\n  \"figures\": [");
        for (int i = 0; i < figures.size(); i++) {
            j.append(i == 0 ? "\n    " : ",\n    ").append(figureJson(figures.get(i)));
        }
        j.append("\n  ],\n  \"targets\": [");
        for (int i = 0; i < targets.size(); i++) {
            Catalog.TargetSpec t = targets.get(i);
            double r = ratio(t.figure(), t.baseline());
            Map<String, String> m = new LinkedHashMap<>();
            m.put("label", str(t.label()));
            m.put("figure", str(t.figure()));
            m.put("baseline", str(t.baseline()));
            m.put("bound", str(t.bound().symbol()));
            m.put("target", num(t.targetRatio()));
            m.put("ratio", num(r));
            m.put("verdict", str(verdict(t, r)));
            j.append(i == 0 ? "\n    " : ",\n    ").append(object(m));
        }
        j.append("\n  ]\n}\n");
        Files.writeString(file, j, StandardCharsets.UTF_8);
    }

    private String figureJson(FigureResult f) {
        Catalog.FigureSpec s = f.spec();
        Map<String, String> m = new LinkedHashMap<>();
        m.put("id", str(s.id()));
        m.put("section", str(s.section()));
        m.put("label", str(s.label()));
        m.put("unit", str(s.unit().symbol()));
        m.put("available", String.valueOf(f.available()));
        if (f.available()) {
            m.put("median", num(f.median()));
            m.put("min", num(f.min()));
            m.put("max", num(f.max()));
            m.put("runs", array(f.samples()));
            m.put("loadBeforeRuns", array(f.loads()));
        } else {
            m.put("reason", str(f.unavailableReason()));
        }
        m.put("baseline", s.baseline() == null ? "null" : str(s.baseline()));
        m.put("ratio", num(ratio(s.id(), s.baseline())));
        return object(m);
    }

    private static String object(Map<String, String> m) {
        StringBuilder b = new StringBuilder("{");
        m.forEach((k, v) -> b.append(b.length() > 1 ? ", " : "").append(str(k)).append(": ").append(v));
        return b.append('}').toString();
    }

    private static String array(List<Double> values) {
        StringBuilder b = new StringBuilder("[");
        for (int i = 0; i < values.size(); i++) {
            b.append(i == 0 ? "" : ", ").append(num(values.get(i)));
        }
        return b.append(']').toString();
    }

    private static String num(double v) {
        return Double.isNaN(v) || Double.isInfinite(v) ? "null" : String.format(Locale.ROOT, "%.6g", v);
    }

    private static String str(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
