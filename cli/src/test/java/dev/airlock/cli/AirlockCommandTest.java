package dev.airlock.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AirlockCommandTest {
    private record Run(int exitCode, String out, String err) {
    }

    private static Run run(String... args) {
        CommandLine cli = Airlock.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out, true));
        cli.setErr(new PrintWriter(err, true));
        int code = cli.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    @Test
    void shouldRunTheDemoAndReportPass() {
        Run r = run("demo", "--mib", "8");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("PASS: both directions intact"), r.out());
        assertTrue(r.out().contains("bounce pool"), r.out());
    }

    @Test
    void shouldExplainEachCommandInHelp() {
        Run r = run("--help");
        assertEquals(0, r.exitCode());
        assertTrue(r.out().contains("demo"), r.out());
    }

    @Test
    void rejectsBadOptionsWithOneLineAndNoStackTrace() {
        Run r = run("demo", "--buffer-kib", "1000");
        assertEquals(Airlock.EXIT_ERROR, r.exitCode());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().startsWith("airlock: "), r.err());
    }
}
