package dev.airlock.bench.suite;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Where the child processes run. On a machine with at least two CPUs allowed to this process and
 * {@code taskset} installed, the measuring process (driver, pinger, subscriber, copier) is pinned
 * to the first allowed CPU and its peer (device backend, echo, publisher) to the second, so the
 * two spinning threads never share a core. Everything else (this harness and the hypervisor
 * daemon it hosts, idle while a figure is measured) is left to the scheduler.
 *
 * @param measureCpu the measuring process's CPU, or -1 if unpinned
 * @param peerCpu    the peer's CPU, or -1 if unpinned
 * @param why        one line describing the placement
 */
public record Placement(int measureCpu, int peerCpu, String why) {
    /**
     * Chooses the placement for this machine.
     *
     * @return pinned to two CPUs when possible, else unpinned with the reason
     */
    public static Placement detect() {
        List<Integer> cpus = allowedCpus();
        boolean taskset = Files.isExecutable(Path.of("/usr/bin/taskset")) || Files.isExecutable(Path.of("/bin/taskset"));
        if (!taskset) {
            return unpinned("unpinned: taskset (util-linux) not found; spinning threads may share a core");
        }
        if (cpus.size() < 2) {
            return unpinned("unpinned: fewer than 2 CPUs allowed (" + cpus + "); spinning threads share a core");
        }
        return new Placement(cpus.get(0), cpus.get(1), "taskset: measuring process (driver, pinger, subscriber, copier) on CPU "
                + cpus.get(0) + ", peer process (device backend, echo, publisher + Aeron media driver) on CPU " + cpus.get(1)
                + "; all threads of a child share its CPU (echo: driver thread, interrupt and doorbell-waiter threads on CPU "
                + cpus.get(0) + "; device interrupt thread or poller on CPU " + cpus.get(1) + "); harness and hypervisor daemon unpinned (idle while measuring); "
                + cpus.size() + " CPUs allowed " + cpus);
    }

    /**
     * No pinning.
     *
     * @param why the reason, for the notes
     * @return an unpinned placement
     */
    public static Placement unpinned(String why) {
        return new Placement(-1, -1, why);
    }

    /** The CPUs in this process's {@code Cpus_allowed_list}, or 0..n-1 where that cannot be read. */
    private static List<Integer> allowedCpus() {
        List<Integer> cpus = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("Cpus_allowed_list:")) {
                    for (String part : line.substring(line.indexOf(':') + 1).trim().split(",")) {
                        String[] range = part.split("-");
                        int lo = Integer.parseInt(range[0].trim());
                        int hi = range.length > 1 ? Integer.parseInt(range[1].trim()) : lo;
                        for (int c = lo; c <= hi; c++) {
                            cpus.add(c);
                        }
                    }
                    return cpus;
                }
            }
        } catch (IOException | RuntimeException e) {
            cpus.clear();
        }
        for (int c = 0; c < Runtime.getRuntime().availableProcessors(); c++) {
            cpus.add(c);
        }
        return cpus;
    }
}
