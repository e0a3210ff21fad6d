package dev.airlock.bench.suite;

import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The statistics and the formatting of the report, without running anything. */
class ReportTest {
    private static final Catalog.FigureSpec BASE = new Catalog.FigureSpec("b", "limits", "base", Unit.NANOSECONDS, null, "x");
    private static final Catalog.FigureSpec FIG = new Catalog.FigureSpec("f", "airlock", "fig", Unit.NANOSECONDS, "b", "y");

    @Test
    void shouldTakeTheMedianMinAndMaxOverTheRuns() {
        FigureResult odd = new FigureResult(BASE);
        for (double v : new double[] {30, 10, 20}) {
            odd.add(v, 1.5);
        }
        assertEquals(20, odd.median());
        assertEquals(10, odd.min());
        assertEquals(30, odd.max());
        assertEquals(1.5, odd.maxLoad());
        FigureResult even = new FigureResult(BASE);
        for (double v : new double[] {4, 1, 3, 2}) {
            even.add(v, Double.NaN);
        }
        assertEquals(2.5, even.median());
        assertTrue(Double.isNaN(even.maxLoad()));
    }

    @Test
    void shouldReportARatioOnlyWhenBothFiguresWereMeasured() {
        FigureResult base = new FigureResult(BASE);
        FigureResult fig = new FigureResult(FIG);
        Report report = new Report(List.of(base, fig), List.of(), List.of("a note"), 1_000_000_000L);
        assertTrue(Double.isNaN(report.ratio("f", "b")));
        base.add(200, 0.1);
        fig.add(300, 0.1);
        assertEquals(1.5, report.ratio("f", "b"));
        base.markUnavailable("gone");
        assertFalse(base.available());
        assertEquals("gone", base.unavailableReason());
        assertTrue(Double.isNaN(report.ratio("f", "b")));
    }

    @Test
    void shouldPrintTheTargetVerdicts() {
        FigureResult base = new FigureResult(BASE);
        FigureResult fig = new FigureResult(FIG);
        base.add(100, 0.5);
        fig.add(90, 0.5);
        List<Catalog.TargetSpec> targets = List.of(new Catalog.TargetSpec("below", "f", "b", Catalog.Bound.AT_MOST, 1.0),
                new Catalog.TargetSpec("above", "f", "b", Catalog.Bound.AT_LEAST, 1.0),
                new Catalog.TargetSpec("missing", "f", "nothing", Catalog.Bound.AT_LEAST, 1.0));
        StringWriter text = new StringWriter();
        new Report(List.of(base, fig), targets, List.of("a note"), 2_500_000_000L).print(new PrintWriter(text));
        String out = text.toString();
        assertTrue(out.contains("# a note"), out);
        assertTrue(out.lines().anyMatch(l -> l.contains("below") && l.contains("0.900") && l.endsWith(" met") && !l.contains("NOT")), out);
        assertTrue(out.lines().anyMatch(l -> l.contains("above") && l.endsWith("NOT met")), out);
        assertTrue(out.lines().anyMatch(l -> l.contains("missing") && l.endsWith("not measured")), out);
        assertTrue(out.contains("wall time 2.5 s"), out);
    }

    @Test
    void shouldScaleUnitsForTheTable() {
        assertEquals("401 ns", Unit.NANOSECONDS.format(401));
        assertEquals("48.6 us", Unit.NANOSECONDS.format(48_600));
        assertEquals("1.23 M/s", Unit.OPS_PER_SECOND.format(1_230_000));
        assertEquals("5.21 GB/s", Unit.BYTES_PER_SECOND.format(5.21e9));
        assertEquals("187 MB/s", Unit.BYTES_PER_SECOND.format(187e6));
        assertEquals("47.1-52.0 us", Unit.NANOSECONDS.formatRange(47_100, 52_000, 50_000));
        assertEquals("391 ns-33.7 ms", Unit.NANOSECONDS.formatRange(391, 33_700_000, 401));
    }
}
