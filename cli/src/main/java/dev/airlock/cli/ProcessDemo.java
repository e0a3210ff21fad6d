package dev.airlock.cli;

import dev.airlock.cli.machine.DeviceSpec;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.process.RemoteHypervisor;
import dev.airlock.transport.TransportKind;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * {@code airlock demo --processes}: the same demo with the hypervisor daemon, the backend and the
 * secondary VM each in its own process, started as {@code airlock hypervisor},
 * {@code airlock backend} and {@code airlock vm run}; this process is the operator issuing
 * {@code airlock vm create/start} through the control plane.
 */
final class ProcessDemo {
    private static final long STEP_TIMEOUT_SECONDS = 60;

    private final PrintWriter out;
    private final Path dir;
    private final Path image;
    private final TransportKind kind;
    private final long dataBytes;
    private final int depth;
    private final long seed;
    private final List<Process> children = new ArrayList<>();

    ProcessDemo(PrintWriter out, Path dir, Path image, TransportKind kind, long dataBytes, int depth, long seed) {
        this.out = out;
        this.dir = dir;
        this.image = image;
        this.kind = kind;
        this.dataBytes = dataBytes;
        this.depth = depth;
        this.seed = seed;
    }

    /** A child's stdout, line by line, read on its own thread. */
    private record Lines(Process process, BlockingQueue<String> lines) {
        static Lines of(Process p, String name) {
            BlockingQueue<String> q = new LinkedBlockingQueue<>();
            Thread reader = new Thread(() -> {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        q.add(line);
                    }
                } catch (IOException ignored) {
                    // the process ended
                }
            }, "airlock-demo-" + name + "-stdout");
            reader.setDaemon(true);
            reader.start();
            return new Lines(p, q);
        }

        String awaitLine(String prefix, String what, Path log) throws InterruptedException, IOException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(STEP_TIMEOUT_SECONDS);
            while (System.nanoTime() < deadline) {
                String line = lines.poll(100, TimeUnit.MILLISECONDS);
                if (line != null && line.startsWith(prefix)) {
                    return line;
                }
                if (line == null && !process.isAlive() && lines.isEmpty()) {
                    break;
                }
            }
            throw new IllegalStateException(what + " did not start; its log (" + log + "):\n" + tail(log));
        }
    }

    int run() throws Exception {
        Path socket = dir.resolve("hv.sock");
        Path log = dir.resolve("children.log");
        Files.createFile(log);
        String transport = DeviceSpec.transportName(kind);
        out.printf("airlock demo --processes: multi-process runtime, %s transport, %s of data%n", transport, Sizes.format(dataBytes));
        try {
            Lines daemon = Lines.of(child(log, "hypervisor", "--socket", socket.toString()), "hypervisor");
            daemon.awaitLine("airlock hypervisor: listening", "the hypervisor", log);
            out.printf("  hypervisor        pid %d on %s%n", daemon.process().pid(), socket);
            DaemonAddress address = DaemonAddress.of(socket);
            VmId host;
            VmId guest;
            try (DaemonAddress.Control control = address.control()) {
                RemoteHypervisor hv = control.hypervisor();
                host = hv.createVm(VmSpec.primary("host", 16L << 20));
                guest = hv.createVm(VmSpec.secondary("guest1", 64L << 20));
                address.saveCredential("host", hv.credential(host));
                address.saveCredential("guest1", hv.credential(guest));
            }
            Lines backend = Lines.of(child(log, "backend", "blk", "--socket", socket.toString(), "--vm", "guest1", "--image", image.toString(),
                    "--transport", transport, "--with", "console", "--with", "rng"), "backend");
            Lines vm = Lines.of(child(log, "vm", "run", "guest1", "--socket", socket.toString(), "--devices", "3",
                    "--data", Long.toString(dataBytes), "--depth", Integer.toString(depth), "--seed", Long.toString(seed)), "vm");
            try (DaemonAddress.Control control = address.control()) {
                control.hypervisor().startVm(host);
                control.hypervisor().startVm(guest);
            }
            String ready = backend.awaitLine("READY", "the backend", log);
            out.printf("  backend           %s%n", ready.substring("READY ".length()));
            out.printf("  secondary VM      pid %d (airlock vm run guest1)%n", vm.process().pid());
            if (!vm.process().waitFor(Math.max(120, dataBytes >> 22), TimeUnit.SECONDS)) {
                throw new IllegalStateException("the VM process did not finish; log:\n" + tail(log));
            }
            List<String> vmLines = new ArrayList<>();
            vm.lines().drainTo(vmLines);
            vmLines.forEach(l -> out.println("  | " + l));
            String consoleLine = "hello from guest1 through virtio-console";
            String received = null;
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (received == null && System.nanoTime() < deadline) {
                String line = backend.lines().poll(100, TimeUnit.MILLISECONDS);
                if (line != null && line.contains(consoleLine)) {
                    received = line;
                }
            }
            out.printf("  console backend   stdout: \"%s\"%n", received);
            int rc = vm.process().exitValue();
            boolean passed = rc == 0 && received != null;
            if (rc != 0) {
                out.println("  the VM process exited with " + rc + "; log:\n" + tail(log));
            }
            out.println(passed ? "  result            PASS" : "  result            FAIL");
            return passed ? 0 : Airlock.EXIT_CHECK_FAILED;
        } finally {
            stopChildren();
        }
    }

    private Process child(Path log, String... args) {
        Process p = SelfLauncher.start(log, args);
        children.add(p);
        return p;
    }

    /** SIGTERM in reverse order of start (VM, backend, hypervisor), then SIGKILL what is left. */
    private void stopChildren() throws InterruptedException {
        for (Process p : children.reversed()) {
            p.destroy();
            if (!p.waitFor(15, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                p.waitFor(5, TimeUnit.SECONDS);
            }
        }
    }

    private static String tail(Path log) throws IOException {
        List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
        return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
    }
}
