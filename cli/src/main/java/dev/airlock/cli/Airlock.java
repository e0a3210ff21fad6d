package dev.airlock.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code airlock} command. Errors are one line on stderr and a non-zero exit code; the stack
 * trace only with {@code --verbose}.
 */
@Command(name = "airlock", mixinStandardHelpOptions = true, version = "airlock 0.1.0",
        description = "virtio for virtual machines whose memory is private.",
        subcommands = {DemoCommand.class, HypervisorCommand.class, VmCommand.class, BackendCommand.class, StatusCommand.class,
            dev.airlock.bench.suite.BenchCommand.class,
            CommandLine.HelpCommand.class})
public final class Airlock {
    /** Exit code for a run whose data did not arrive intact. */
    static final int EXIT_CHECK_FAILED = 1;
    /** Exit code for an error (bad arguments are picocli's 2). */
    static final int EXIT_ERROR = 3;

    @CommandLine.Option(names = "--verbose", scope = CommandLine.ScopeType.INHERIT,
            description = "Print stack traces with errors.")
    boolean verbose;

    private Airlock() {
    }

    /**
     * Runs the command.
     *
     * @param args the arguments
     */
    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /**
     * The configured command line, for tests.
     *
     * @return the command line
     */
    static CommandLine commandLine() {
        CommandLine cli = new CommandLine(new Airlock());
        cli.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
            Object root = commandLine.getCommandSpec().root().userObject();
            boolean verbose = root instanceof Airlock a && a.verbose;
            if (verbose) {
                e.printStackTrace(commandLine.getErr());
            } else {
                commandLine.getErr().println("airlock: " + e.getMessage()
                        + (e.getCause() != null ? ": " + e.getCause().getMessage() : "") + " (--verbose for details)");
            }
            return EXIT_ERROR;
        });
        return cli;
    }
}
