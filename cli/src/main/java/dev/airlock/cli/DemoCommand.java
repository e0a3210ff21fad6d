package dev.airlock.cli;

import dev.airlock.cli.loopback.Loopback;
import dev.airlock.cli.machine.DeviceSpec;
import dev.airlock.cli.machine.EmbeddedMachine;
import dev.airlock.cli.machine.GuestWorkload;
import dev.airlock.cli.machine.ServedDevice;
import dev.airlock.devices.console.ConsoleEndpoint;
import dev.airlock.swiotlb.SwiotlbStats;
import dev.airlock.transport.TransportKind;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code airlock demo}: a primary VM serving blk, console and rng backends to a secondary VM whose
 * application writes data to the disk and reads it back, prints a line through the console and
 * reads entropy. In-process by default; {@code --processes} runs every part as its own process.
 */
@Command(name = "demo", mixinStandardHelpOptions = true, description = {
    "Runs the demo: a secondary VM using blk, console and rng devices served by a primary VM.",
    "",
    "A hypervisor starts a primary VM with blk (on a temporary disk image), console and rng backends",
    "and a secondary VM. The secondary's application writes --data of random data to the disk and",
    "reads it back (CRC32C both ways), prints a line through the console and reads entropy. Every",
    "buffer lives in the secondary's private memory and is bounced through a pool in the device's",
    "shared region: the primary never sees the secondary's memory. Exit 0 when everything checks out.",
    "",
    "By default everything runs in this process (the in-process runtime). With --processes the",
    "hypervisor, the backend and the secondary VM are separate OS processes (the multi-process",
    "runtime: memfd regions and eventfd doorbells passed over a Unix socket).",
    "--loopback runs the older single-virtqueue loopback instead (no hypervisor)."})
final class DemoCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--processes", description = "Run the hypervisor, the backend and the VM as separate processes.")
    boolean processes;

    @Option(names = "--transport", defaultValue = "msgq-mmio", description = "msgq-mmio or shmem-doorbell (default: ${DEFAULT-VALUE}).")
    String transport;

    @Option(names = "--data", defaultValue = "256M", converter = Sizes.class, description = "Data written and read back (default: ${DEFAULT-VALUE}).")
    long dataBytes;

    @Option(names = "--depth", defaultValue = "16", description = "Block requests in flight (default: ${DEFAULT-VALUE}).")
    int depth;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the data (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--loopback", description = "Run the single-virtqueue loopback (driver and device threads over one memfd).")
    boolean loopback;

    @Override
    public Integer call() throws Exception {
        if (loopback) {
            return runLoopback();
        }
        TransportKind kind = DeviceSpec.transport(transport);
        Path dir = Files.createTempDirectory(Files.isDirectory(Path.of("/dev/shm")) ? Path.of("/dev/shm") : Path.of(System.getProperty("java.io.tmpdir")),
                "airlock-demo-");
        try {
            Path image = dir.resolve("disk.raw");
            try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
                f.setLength(dataBytes + (1L << 20));
            }
            return processes ? new ProcessDemo(spec.commandLine().getOut(), dir, image, kind, dataBytes, depth, seed).run()
                    : runInProcess(image, kind);
        } finally {
            deleteTree(dir);
        }
    }

    private int runInProcess(Path image, TransportKind kind) throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        out.printf("airlock demo: in-process runtime, %s transport, %s of data%n", DeviceSpec.transportName(kind), Sizes.format(dataBytes));
        List<DeviceSpec> specs = List.of(DeviceSpec.parse("blk:image=" + image, 0, kind), DeviceSpec.parse("console", 1, kind),
                DeviceSpec.parse("rng", 2, kind));
        ByteArrayOutputStream consoleOut = new ByteArrayOutputStream();
        GuestWorkload.Options options = new GuestWorkload.Options(dataBytes, depth, seed, "hello from guest1 through virtio-console");
        long ram = Math.max(64L << 20, options.ramBytes());
        try (EmbeddedMachine machine = new EmbeddedMachine("guest1", ram, specs,
                s -> ConsoleEndpoint.streams(InputStream.nullInputStream(), consoleOut))) {
            GuestWorkload.Result result = GuestWorkload.run(machine.guestDevices(), machine.secondary().addressSpace(), 0, options);
            result.report().forEach(out::println);
            for (ServedDevice d : machine.served()) {
                out.printf("  backend %-9s %s%n", d.spec().type().cliName(), d.metrics());
            }
            String received = awaitConsole(consoleOut, options.consoleLine());
            out.printf("  console backend   received \"%s\"%n", received.strip());
            boolean passed = result.passed() && received.contains(options.consoleLine());
            out.println(passed ? "  result            PASS" : "  result            FAIL");
            return passed ? 0 : Airlock.EXIT_CHECK_FAILED;
        }
    }

    /** The console backend writes on its own thread: give it a moment to hand the line on. */
    private static String awaitConsole(ByteArrayOutputStream consoleOut, String expected) {
        long deadline = System.nanoTime() + 5_000_000_000L;
        String s = consoleOut.toString(StandardCharsets.UTF_8);
        while (!s.contains(expected) && System.nanoTime() < deadline) {
            Thread.onSpinWait();
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            s = consoleOut.toString(StandardCharsets.UTF_8);
        }
        return s;
    }

    private int runLoopback() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        int bufferKib = 64;
        int queueSize = 256;
        out.printf("airlock demo --loopback: %s each way, %d KiB buffers, queue size %d%n", Sizes.format(dataBytes), bufferKib, queueSize);
        Loopback.Report r = Loopback.run(new Loopback.Options(dataBytes, bufferKib << 10, queueSize, seed));
        SwiotlbStats pool = r.pool();
        double seconds = r.elapsedNs() / 1e9;
        out.printf("  requests          %,d (kicks %,d, interrupts %,d; the rest suppressed by event index)%n",
                r.requests(), r.kicks(), r.interrupts());
        out.printf("  driver -> device  %,d bytes, CRC32C sent %08x received %08x%n", r.bytesToDevice(), r.driverSentCrc(), r.deviceReceivedCrc());
        out.printf("  device -> driver  %,d bytes, CRC32C sent %08x received %08x%n", r.bytesFromDevice(), r.deviceSentCrc(), r.driverReceivedCrc());
        out.printf("  bounce pool       %s%n", pool);
        out.printf("  throughput        %.0f MiB/s each way (%.2f s)%n", r.bytesToDevice() / seconds / (1 << 20), seconds);
        out.println(r.intact() ? "  result            PASS: both directions intact" : "  result            FAIL: checksums differ");
        return r.intact() ? 0 : Airlock.EXIT_CHECK_FAILED;
    }

    static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (var paths = Files.walk(dir)) {
            for (Path p : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
