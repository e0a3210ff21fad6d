package dev.airlock.bench.suite;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Runs the whole suite end to end in a tiny mode (no warm-up, three runs of 50 ms per figure, every
 * scenario in its own child processes) and checks that the table and the JSON hold every figure
 * with sane values and consistent ratios. Nothing here asserts on speed.
 */
class BenchCommandTest {
    @TempDir
    Path dir;

    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void shouldReportEveryFigureInTheTableAndTheJson() throws Exception {
        Path json = dir.resolve("bench.json");
        StringWriter text = new StringWriter();
        CommandLine cli = new CommandLine(new BenchCommand());
        cli.setOut(new PrintWriter(text, true));
        // Three short runs rather than one: the median then survives one run stalled by a busy machine.
        int exit = cli.execute("--quick", "--warmups", "0", "--runs", "3", "--run-ms", "50", "--json", json.toString());
        String table = text.toString();
        System.out.println(table);
        assertEquals(0, exit, table);

        assertTrue(table.contains("Targets"), "the targets block is printed");
        assertTrue(table.contains("placement: "), "the placement is recorded");
        assertTrue(table.contains("-XX:+UseSerialGC"), "the child JVM flags are recorded");

        Map<String, Object> root = asObject(new Json(Files.readString(json)).value());
        Map<String, Map<String, Object>> figures = new HashMap<>();
        for (Object f : asList(root.get("figures"))) {
            Map<String, Object> figure = asObject(f);
            figures.put((String) figure.get("id"), figure);
        }
        List<Catalog.FigureSpec> specs = Catalog.figures(1, 1);
        assertEquals(specs.size(), figures.size(), "one JSON entry per figure");
        for (Catalog.FigureSpec spec : specs) {
            Map<String, Object> f = figures.get(spec.id());
            assertNotNull(f, spec.id());
            assertEquals(Boolean.TRUE, f.get("available"), () -> spec.id() + ": " + f.get("reason"));
            String label = (String) f.get("label");
            String row = table.lines().filter(l -> l.startsWith(label + " ")).findFirst().orElse(null);
            assertNotNull(row, () -> "no table row for " + label);
            assertFalse(row.contains(" n/a "), () -> "figure not measured: " + row);
            double median = (Double) f.get("median");
            assertTrue(median > 0 && Double.isFinite(median), () -> spec.id() + " median " + median);
            assertTrue((Double) f.get("min") <= median && median <= (Double) f.get("max"), spec.id());
            assertEquals(3, asList(f.get("runs")).size(), spec.id());
            assertEquals(spec.unit().symbol(), f.get("unit"));
            if (spec.baseline() != null) {
                double baseline = (Double) figures.get(spec.baseline()).get("median");
                double ratio = (Double) f.get("ratio");
                assertEquals(median / baseline, ratio, 1e-4 * ratio, () -> spec.id() + ": ratio = value / baseline");
            } else {
                assertEquals(null, f.get("ratio"), spec.id());
            }
        }
        List<Object> targets = asList(root.get("targets"));
        assertEquals(Catalog.targets().size(), targets.size());
        for (Object t : targets) {
            Map<String, Object> target = asObject(t);
            assertTrue((Double) target.get("ratio") > 0, () -> "target measured: " + target);
            assertTrue(List.of("met", "NOT met").contains(target.get("verdict")), target.toString());
        }
    }

    @Test
    void shouldMarkUnselectedScenariosNotAvailable() throws Exception {
        Path json = dir.resolve("copy.json");
        StringWriter text = new StringWriter();
        CommandLine cli = new CommandLine(new BenchCommand());
        cli.setOut(new PrintWriter(text, true));
        assertEquals(0, cli.execute("--warmups", "0", "--runs", "3", "--run-ms", "20", "--only", "^copy$", "--json",
                json.toString()), text::toString);
        Map<String, Object> root = asObject(new Json(Files.readString(json)).value());
        for (Object o : asList(root.get("figures"))) {
            Map<String, Object> f = asObject(o);
            boolean copy = ((String) f.get("id")).startsWith("copy.");
            assertEquals(copy, f.get("available"), f.toString());
            if (copy) {
                assertEquals(3, asList(f.get("runs")).size());
                assertEquals(3, asList(f.get("loadBeforeRuns")).size());
            } else {
                assertTrue(((String) f.get("reason")).contains("not selected"), f.toString());
            }
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> asObject(Object o) {
        return (Map<String, Object>) o;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> asList(Object o) {
        return (List<Object>) o;
    }
}
