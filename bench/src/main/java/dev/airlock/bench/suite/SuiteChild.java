package dev.airlock.bench.suite;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * The entry point of every child process of the suite. The first argument names the role; the
 * measuring roles print {@code LOAD}/{@code RUN} lines ({@link RunPlan}) and then {@code DONE};
 * the peer roles serve until the harness ends them. A failure prints its stack trace on stderr
 * (which the harness logs) and exits with status 1. A child ends itself if the harness dies.
 */
public final class SuiteChild {
    private SuiteChild() {
    }

    /**
     * Runs one role.
     *
     * @param args the role, then its arguments (see the source of each workload)
     */
    public static void main(String[] args) {
        watchParent();
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try {
            run(out, in, args);
        } catch (Throwable t) {
            System.err.println("suite child " + String.join(" ", args) + " failed:");
            t.printStackTrace();
            System.exit(1);
        }
        System.exit(0); // peers' and Aeron's non-daemon threads must not keep a finished child alive
    }

    /**
     * Peers spin until they are killed: if the harness dies without killing them (Ctrl-C, kill -9),
     * a daemon thread that looks once a second ends this process, so no spinner is left behind.
     */
    private static void watchParent() {
        ProcessHandle parent = ProcessHandle.current().parent().orElse(null);
        if (parent == null) {
            return;
        }
        Thread watchdog = new Thread(() -> {
            while (parent.isAlive()) {
                try {
                    Thread.sleep(1000);
                } catch (InterruptedException e) {
                    return;
                }
            }
            Runtime.getRuntime().halt(2);
        }, "bench-parent-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
    }

    private static void run(PrintStream out, BufferedReader in, String[] a) throws Exception {
        switch (a[0]) {
            case "copy" -> BaselineWorkloads.copy(out, RunPlan.fromArgs(a, 1), Long.parseLong(a[4]), Long.parseLong(a[5]));
            case "pingpong" -> BaselineWorkloads.pingPong(out, RunPlan.fromArgs(a, 1), Path.of(a[4]));
            case "pingpong-peer" -> BaselineWorkloads.pingPongPeer(Path.of(a[1]));
            case "socket-rr" -> BaselineWorkloads.socketRequestResponse(out, RunPlan.fromArgs(a, 1), Path.of(a[4]));
            case "socket-bulk" -> BaselineWorkloads.socketBulk(out, RunPlan.fromArgs(a, 1), Path.of(a[4]));
            case "socket-peer" -> BaselineWorkloads.socketPeer(Path.of(a[1]), Boolean.parseBoolean(a[2]));
            case "aeron-ping" -> AeronWorkloads.ping(out, RunPlan.fromArgs(a, 1), a[4]);
            case "aeron-subscribe" -> AeronWorkloads.subscribe(out, RunPlan.fromArgs(a, 1), a[4], Integer.parseInt(a[5]));
            case "aeron-peer" -> AeronWorkloads.peer(a[1], Integer.parseInt(a[2]));
            case "echo-backend" -> EchoWorkloads.backend(out, in, EchoWorkloads.Setup.fromArgs(a, 1));
            case "blk-backend" -> BlkWorkloads.backend(out, in, EchoWorkloads.Setup.fromArgs(a, 1), Path.of(a[12]));
            case "device-driver" -> EchoWorkloads.driver(out, in, RunPlan.fromArgs(a, 13), EchoWorkloads.Setup.fromArgs(a, 2),
                    Long.parseLong(a[16]), a[1].equals("blk"));
            default -> throw new IllegalArgumentException("unknown role " + a[0]);
        }
        out.println(RunPlan.DONE);
    }
}
