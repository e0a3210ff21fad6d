package dev.airlock.cli;

import dev.airlock.cli.machine.BackendProcess;
import dev.airlock.cli.machine.DeviceSpec;
import dev.airlock.cli.machine.ServedDevice;
import dev.airlock.devices.console.ConsoleEndpoint;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmInfo;
import dev.airlock.hypervisor.VmRole;
import dev.airlock.transport.TransportKind;
import dev.airlock.vhostuser.VhostUserBackend;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@code airlock backend TYPE}: a standalone device backend. Either in the primary VM's domain of a
 * running hypervisor ({@code --vm}), or toward a VMM over vhost-user ({@code --vhost-user}).
 */
@Command(name = "backend", mixinStandardHelpOptions = true, description = {
    "Runs a device backend (blk, console or rng) as a standalone program.",
    "",
    "With --vm NAME it serves the secondary VM NAME of a running 'airlock hypervisor' from the",
    "primary's side: it sets up one shared region per device, attaches with a backend credential,",
    "and serves until stopped (Ctrl-C, SIGTERM). The hypervisor grants per VM pair, so one backend",
    "process serves all of a pair's devices: add more with --with (slots follow in order).",
    "",
    "With --vhost-user SOCKET it serves a VMM such as QEMU instead (one frontend at a time).",
    "",
    "Examples:",
    "  airlock backend blk --vm guest1 --image disk.raw --with console --with rng",
    "  airlock backend console --vm guest1 --console-socket /tmp/guest1.console",
    "  airlock backend blk --vhost-user /tmp/vub.sock --image disk.raw"})
final class BackendCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;
    @Mixin
    VmCommand.SocketOption socket = new VmCommand.SocketOption();

    @Parameters(paramLabel = "TYPE", description = "blk, console or rng")
    String type;

    @Option(names = "--vm", paramLabel = "NAME", description = "The secondary VM to serve.")
    String vm;

    @Option(names = "--vhost-user", paramLabel = "SOCKET", description = "Serve a VMM over vhost-user on this socket instead.")
    Path vhostUser;

    @Option(names = "--transport", defaultValue = "msgq-mmio", description = "msgq-mmio or shmem-doorbell (default: ${DEFAULT-VALUE}).")
    String transport;

    @Option(names = "--slot", defaultValue = "0", description = "The first device's slot (default: ${DEFAULT-VALUE}).")
    int slot;

    @Option(names = "--image", paramLabel = "FILE", description = "blk: the raw image.")
    Path image;

    @Option(names = "--read-only", description = "blk: serve the image read-only.")
    boolean readOnly;

    @Option(names = "--serial", description = "blk: the serial number GET_ID returns.")
    String serial;

    @Option(names = "--queues", description = "blk: request queues (default 1).")
    Integer queues;

    @Option(names = "--console-socket", paramLabel = "PATH", description = "console: a Unix socket to listen on, instead of stdio.")
    Path consoleSocket;

    @Option(names = "--console-file", paramLabel = "PATH", description = "console: append the guest's output to a file (no input).")
    Path consoleFile;

    @Option(names = "--with", paramLabel = "SPEC", description = "Another device of the same VM: TYPE[:key=value,...], e.g. rng, console:socket=/tmp/c.sock, blk:image=b.raw,ro.")
    List<String> with = new ArrayList<>();

    @Option(names = "--start-timeout", defaultValue = "600", description = "Seconds to wait for the primary to start (default: ${DEFAULT-VALUE}).")
    long startTimeoutSeconds;

    @Override
    public Integer call() throws InterruptedException {
        TransportKind kind = DeviceSpec.transport(transport);
        List<DeviceSpec> specs = new ArrayList<>();
        specs.add(DeviceSpec.parse(firstSpec(), slot, kind));
        for (String w : with) {
            specs.add(DeviceSpec.parse(w, specs.getLast().slot() + 1, kind));
        }
        if (vhostUser != null) {
            if (vm != null || !with.isEmpty()) {
                throw new IllegalArgumentException("--vhost-user serves one device to a VMM: leave out --vm and --with");
            }
            return serveVhostUser(specs.getFirst());
        }
        if (vm == null) {
            throw new IllegalArgumentException("say which VM to serve (--vm NAME) or which vhost-user socket (--vhost-user SOCKET)");
        }
        return serveVm(specs);
    }

    private String firstSpec() {
        StringBuilder s = new StringBuilder(type);
        List<String> options = new ArrayList<>();
        if (image != null) {
            options.add("image=" + image);
        }
        if (readOnly) {
            options.add("ro");
        }
        if (serial != null) {
            options.add("serial=" + serial);
        }
        if (queues != null) {
            options.add("queues=" + queues);
        }
        if (consoleSocket != null) {
            options.add("socket=" + consoleSocket);
        }
        if (consoleFile != null) {
            options.add("file=" + consoleFile);
        }
        if (!options.isEmpty()) {
            s.append(':').append(String.join(",", options));
        }
        return s.toString();
    }

    static ConsoleEndpoint consoleEndpoint(DeviceSpec spec) {
        String socketPath = spec.option("socket", null);
        String file = spec.option("file", null);
        if (socketPath != null && file != null) {
            throw new IllegalArgumentException("console: give socket or file, not both");
        }
        if (socketPath != null) {
            return ConsoleEndpoint.unixSocket(Path.of(socketPath));
        }
        if (file != null) {
            return ConsoleEndpoint.file(Path.of(file));
        }
        return ConsoleEndpoint.stdio();
    }

    private int serveVm(List<DeviceSpec> specs) throws InterruptedException {
        DaemonAddress address = socket.address();
        PrintWriter out = spec.commandLine().getOut();
        BackendProcess backend;
        try (DaemonAddress.Control control = address.control()) {
            VmInfo secondary = DaemonAddress.find(control.hypervisor(), vm);
            if (secondary.role() != VmRole.SECONDARY) {
                throw new IllegalArgumentException("'" + vm + "' is the primary: backends serve secondaries");
            }
            VmId primary = DaemonAddress.primary(control.hypervisor());
            backend = BackendProcess.start(address.socket(), control.hypervisor(), primary, secondary.id(), vm, specs,
                    BackendCommand::consoleEndpoint, Duration.ofSeconds(startTimeoutSeconds));
        }
        CountDownLatch stop = new CountDownLatch(1);
        CountDownLatch stopped = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            stop.countDown();
            try {
                stopped.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "airlock-backend-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        try (backend) {
            out.printf("READY airlock backend pid %d serving %s: %s%n", ProcessHandle.current().pid(), vm, specs);
            out.flush();
            Path status = address.statusFile(vm, "backend");
            while (!stop.await(1, TimeUnit.SECONDS)) {
                address.write(status, String.join("\n", backend.statusLines()) + "\n");
            }
            java.nio.file.Files.deleteIfExists(status);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        } finally {
            stopped.countDown();
        }
        return 0;
    }

    private int serveVhostUser(DeviceSpec device) throws InterruptedException {
        PrintWriter out = spec.commandLine().getOut();
        // Opened once up front so a bad image or a lock held by another backend fails here, in one line.
        ServedDevice.create(device, BackendCommand::consoleEndpoint).close();
        // One fresh model per frontend connection: the backend resets and closes it when the connection
        // ends (which releases the image lock for the next one).
        try (VhostUserBackend backend = VhostUserBackend.serve(vhostUser,
                () -> ServedDevice.create(device, BackendCommand::consoleEndpoint).model())) {
            Runtime.getRuntime().addShutdownHook(new Thread(backend::close, "airlock-vhost-user-shutdown"));
            out.printf("READY airlock backend pid %d serving %s over vhost-user on %s%n", ProcessHandle.current().pid(), device.type().cliName(),
                    vhostUser);
            out.flush();
            backend.awaitClosed();
        }
        return 0;
    }
}
