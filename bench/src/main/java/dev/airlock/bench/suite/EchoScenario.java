package dev.airlock.bench.suite;

import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.process.Credential;
import dev.airlock.hypervisor.process.HypervisorDaemon;
import dev.airlock.hypervisor.process.RemoteHypervisor;
import dev.airlock.transport.TransportKind;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * One device scenario (the echo device, or virtio-blk) on the multi-process runtime: the hypervisor
 * daemon runs in the harness, which also creates the primary and the secondary, the pair's shared
 * region, message queues and doorbells; the device backend (a process of the primary) and the
 * driver (the secondary VM's own process) are child JVMs pinned to different CPUs.
 */
final class EchoScenario {
    private static final long HOST_RAM = 1L << 20;
    private static final long REGION_BYTES = 8L << 20;
    private static final long HOST_REGION_BASE = 0x1_0000_0000L;
    private static final long GUEST_REGION_BASE = 0x8000_0000L;
    private static final int MESSAGE_QUEUE_DEPTH = 64;
    private static final Duration STEP = Duration.ofSeconds(60);

    private final String scenario;
    private final Path scratch;
    private final Placement placement;
    private final RunPlan plan;
    private final Consumer<String> lines;
    private final TransportKind kind;
    private final boolean polling;
    private final boolean blk;

    /**
     * Prepares the scenario.
     *
     * @param scenario the scenario name ({@link Catalog#echoScenario} or {@link Catalog#blkScenario})
     * @param scratch  a directory for the daemon's socket and the children's logs
     * @param placement where the children run
     * @param plan     the runs
     * @param lines    receives the driver's LOAD and RUN lines
     */
    EchoScenario(String scenario, Path scratch, Placement placement, RunPlan plan, Consumer<String> lines) {
        this.scenario = scenario;
        this.scratch = scratch;
        this.placement = placement;
        this.plan = plan;
        this.lines = lines;
        this.polling = scenario.endsWith("-polling");
        this.blk = scenario.startsWith("blk-");
        TransportKind found = null;
        for (TransportKind k : TransportKind.hosted()) {
            if (scenario.equals(blk ? Catalog.blkScenario(k) : Catalog.echoScenario(k, polling ? "polling" : "doorbell"))) {
                found = k;
            }
        }
        if (found == null) {
            throw new IllegalArgumentException("not a device scenario: " + scenario);
        }
        this.kind = found;
    }

    /**
     * Runs it: sets up the pair, starts both children, relays the driver's figures, stops everything.
     *
     * @throws IOException if a child fails or stalls
     * @throws InterruptedException if interrupted
     */
    void run() throws IOException, InterruptedException {
        long guestRam = Math.max(blk ? BlkWorkloads.RAM_BYTES : EchoLoop.RAM_BYTES, 4L << 20);
        Path image = scratch.resolve("blk.img");
        if (blk) {
            writeImage(image);
        }
        try (HypervisorDaemon daemon = HypervisorDaemon.start(scratch.resolve("hv.sock"), HypervisorConfig.DEFAULT);
             RemoteHypervisor hypervisor = RemoteHypervisor.connect(daemon.socketPath(), daemon.controlCredential())) {
            VmId host = hypervisor.createVm(VmSpec.primary("host", HOST_RAM));
            VmId guest = hypervisor.createVm(VmSpec.secondary("guest", guestRam));
            Credential backendCredential = hypervisor.assignBackend(host, guest);
            SharedRegionInfo region = hypervisor.createSharedRegion(host, guest, blk ? "guest.blk0" : "guest.echo0", REGION_BYTES, HOST_REGION_BASE,
                    GUEST_REGION_BASE);
            hypervisor.connectMessageQueues(host, guest, MESSAGE_QUEUE_DEPTH);
            hypervisor.connectDoorbells(host, guest);
            EchoWorkloads.Setup backendSetup = new EchoWorkloads.Setup(daemon.socketPath(), backendCredential, kind, polling, region);
            EchoWorkloads.Setup driverSetup = new EchoWorkloads.Setup(daemon.socketPath(), hypervisor.credential(guest), kind,
                    polling, region);
            List<String> backendArgs = concat(blk ? "blk-backend" : "echo-backend", EchoWorkloads.args(backendSetup, null, 0));
            if (blk) {
                backendArgs.add(image.toString());
            }
            List<String> driverArgs = concat("device-driver", List.of());
            driverArgs.add(blk ? "blk" : "echo");
            driverArgs.addAll(EchoWorkloads.args(driverSetup, plan, guestRam));
            try (ChildProcess backend = ChildProcess.start(scenario + "-backend", placement.peerCpu(), backendArgs, scratch);
                 ChildProcess driver = ChildProcess.start(scenario + "-driver", placement.measureCpu(), driverArgs, scratch)) {
                driver.expect("ATTACHED", STEP);
                hypervisor.startVm(host);
                hypervisor.startVm(guest);
                backend.expect("READY", STEP);
                driver.send("GO");
                String line;
                while (!(line = driver.nextLine(STEP)).equals(RunPlan.DONE)) {
                    lines.accept(line);
                }
                backend.send("stop");
                checkBackend(backend.expect("STATS", STEP));
            }
        }
    }

    /** A read-only image of pseudo-random bytes; written here, so it is in the page cache when read. */
    private static void writeImage(Path image) throws IOException {
        SplittableRandom random = new SplittableRandom(7);
        byte[] chunk = new byte[1 << 20];
        try (OutputStream out = Files.newOutputStream(image)) {
            for (long written = 0; written < BlkWorkloads.IMAGE_BYTES; written += chunk.length) {
                for (int i = 0; i < chunk.length; i += 8) {
                    long v = random.nextLong();
                    for (int b = 0; b < 8; b++) {
                        chunk[i + b] = (byte) (v >>> (8 * b));
                    }
                }
                out.write(chunk);
            }
        }
    }

    /** The backend must have served requests and seen no protocol or internal error and no fault. */
    private static void checkBackend(String stats) throws IOException {
        String[] w = stats.split(" ");
        if (Long.parseLong(w[1]) <= 0 || Long.parseLong(w[2]) != 0 || Long.parseLong(w[3]) != 0 || Long.parseLong(w[4]) != 0) {
            throw new IOException("backend: requests, protocol errors, internal errors, faults = " + stats);
        }
    }

    private static List<String> concat(String role, List<String> args) {
        List<String> all = new ArrayList<>();
        all.add(role);
        all.addAll(args);
        return all;
    }
}
