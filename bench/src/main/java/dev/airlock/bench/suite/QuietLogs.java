package dev.airlock.bench.suite;

import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Keeps the hypervisor daemon's INFO lines (VMs attaching and dying, once per echo scenario) out of
 * the suite's output; warnings and errors still print.
 */
final class QuietLogs {
    /** Held so the logger, and with it the level, is not collected. */
    private static Logger hypervisor;

    private QuietLogs() {
    }

    /** Raises the level of the {@code dev.airlock.hypervisor} loggers to WARNING. */
    static void quietHypervisorLogs() {
        hypervisor = Logger.getLogger("dev.airlock.hypervisor");
        hypervisor.setLevel(Level.WARNING);
    }
}
