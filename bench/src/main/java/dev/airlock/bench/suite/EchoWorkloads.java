package dev.airlock.bench.suite;

import dev.airlock.hypervisor.SharedRegionId;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmState;
import dev.airlock.hypervisor.process.Credential;
import dev.airlock.hypervisor.process.RemoteVmContext;
import dev.airlock.transport.DeviceHost;
import dev.airlock.transport.DriverHost;
import dev.airlock.transport.DriverTransport;
import dev.airlock.transport.TransportKind;
import dev.airlock.transport.VirtioFrontend;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The two child processes of an echo run on the multi-process runtime: the backend (the primary's
 * device process, serving a {@link BenchEchoDevice} in slot 0 of the pair's region) and the driver
 * (the secondary VM itself, measuring). The harness runs the daemon and the control plane and
 * passes each child its credential and the region.
 */
final class EchoWorkloads {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final Duration TRANSPORT_TIMEOUT = Duration.ofSeconds(5);
    private static final int MAX_SAMPLES = 1 << 22;

    private EchoWorkloads() {
    }

    /**
     * The arguments both children share.
     *
     * @param socket     the daemon's socket
     * @param credential the child's credential
     * @param kind       the transport
     * @param polling    polling rather than doorbell mode
     * @param region     the pair's region
     */
    record Setup(Path socket, Credential credential, TransportKind kind, boolean polling, SharedRegionInfo region) {
        List<String> toArgs() {
            return List.of(socket.toString(), credential.toHex(), kind.name(), polling ? "polling" : "doorbell",
                    String.valueOf(region.id().value()), region.name(), String.valueOf(region.sizeBytes()),
                    String.valueOf(region.primary().value()), String.valueOf(region.secondary().value()),
                    String.valueOf(region.primaryGpaBase()), String.valueOf(region.secondaryGpaBase()));
        }

        static Setup fromArgs(String[] a, int i) {
            SharedRegionInfo region = new SharedRegionInfo(new SharedRegionId(Long.parseLong(a[i + 4])), a[i + 5],
                    Long.parseLong(a[i + 6]), new VmId(Integer.parseInt(a[i + 7])), new VmId(Integer.parseInt(a[i + 8])),
                    Long.parseLong(a[i + 9]), Long.parseLong(a[i + 10]));
            return new Setup(Path.of(a[i]), Credential.fromHex(a[i + 1]), TransportKind.valueOf(a[i + 2]),
                    a[i + 3].equals("polling"), region);
        }
    }

    /**
     * The backend: attaches, serves the device, prints {@code READY}, and on the first stdin line
     * (or end of input) prints {@code STATS requests protocolErrors internalErrors faults} and stops.
     *
     * @param out stdout
     * @param in  stdin
     * @param s   the setup
     * @throws Exception if anything fails (the harness sees the process end)
     */
    static void backend(PrintStream out, BufferedReader in, Setup s) throws Exception {
        try (RemoteVmContext vm = RemoteVmContext.attach(s.socket(), s.credential())) {
            awaitRunningWithRegion(vm, s.region());
            BenchEchoDevice device = new BenchEchoDevice();
            try (DeviceHost host = new DeviceHost(vm)) {
                Polling.addDevice(host, s.kind(), s.region(), device, s.polling());
                out.println("READY");
                in.readLine();
                out.println("STATS " + device.requests() + " " + host.protocolErrors() + " " + host.internalErrors() + " "
                        + host.faultCount(s.region().secondary(), 0));
            }
        }
    }

    /**
     * The driver: attaches, prints {@code ATTACHED}, waits for a {@code GO} line (sent once the
     * backend is ready), initialises the device and measures. The echo device: round trip and rate
     * at depth 1, rate at depth 64, then bulk 64 KiB writes at depth 16.
     *
     * @param out  stdout
     * @param in   stdin
     * @param plan the runs
     * @param s    the setup
     * @param ramBytes the VM's private RAM size
     * @param blk  drive the virtio-blk device ({@link BlkWorkloads}) rather than the echo device
     * @throws Exception if anything fails
     */
    static void driver(PrintStream out, BufferedReader in, RunPlan plan, Setup s, long ramBytes, boolean blk) throws Exception {
        try (RemoteVmContext guest = RemoteVmContext.attach(s.socket(), s.credential())) {
            out.println("ATTACHED");
            String go = in.readLine();
            if (!"GO".equals(go)) {
                throw new IOException("expected GO from the harness, got " + go);
            }
            awaitRunningWithRegion(guest, s.region());
            try (DriverHost driverHost = new DriverHost(guest, TRANSPORT_TIMEOUT)) {
                DriverTransport transport = driverHost.open(s.kind(), s.region().id(), 0);
                try (VirtioFrontend frontend = new VirtioFrontend(transport, guest.addressSpace())) {
                    if (blk) {
                        BlkWorkloads.measure(out, plan, s, guest, frontend);
                        return;
                    }
                    frontend.initialize(BenchEchoDevice.DEVICE_ID, BenchEchoDevice.FEATURES, BenchEchoDevice.MAX_QUEUE_SIZE);
                    measure(out, plan, s, new EchoLoop(frontend, guest.addressSpace().translate(0, ramBytes), s.polling()));
                }
                if (driverHost.protocolErrors() != 0 || driverHost.internalErrors() != 0) {
                    throw new IllegalStateException("driver host errors: " + driverHost.protocolErrors() + " protocol, "
                            + driverHost.internalErrors() + " internal");
                }
            }
        }
    }

    private static void measure(PrintStream out, RunPlan plan, Setup s, EchoLoop loop) throws Exception {
        String p = Catalog.echoPrefix(s.kind(), s.polling() ? "polling" : "doorbell");
        long[] samples = new long[MAX_SAMPLES];
        plan.execute(out, (durationNs, report) -> {
            long[] r = loop.run(1, false, durationNs, samples);
            int n = loop.sampleCount();
            report.value(p + ".rate.qd1", r[0] * 1e9 / r[1]);
            report.value(p + ".rtt.p50", RunPlan.percentile(samples, n, 50));
            report.value(p + ".rtt.p99", RunPlan.percentile(samples, n, 99));
        });
        plan.execute(out, (durationNs, report) -> {
            long[] r = loop.run(Catalog.DEEP_QUEUE, false, durationNs, null);
            report.value(p + ".rate.qd64", r[0] * 1e9 / r[1]);
        });
        plan.execute(out, (durationNs, report) -> {
            long[] r = loop.run(Catalog.BULK_DEPTH, true, durationNs, null);
            report.value(p + ".bulk64k", r[0] * (double) Catalog.BULK_BYTES * 1e9 / r[1]);
        });
    }

    static void awaitRunningWithRegion(RemoteVmContext vm, SharedRegionInfo region) throws InterruptedException {
        if (!vm.awaitState(VmState.RUNNING, WAIT)) {
            throw new IllegalStateException(vm.name() + " is not running: " + vm.state());
        }
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (vm.sharedRegions().stream().noneMatch(m -> m.id().equals(region.id()))
                || (vm.servedPeer().isEmpty() && !vm.peers().contains(region.primary()))) {
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException(vm.name() + " did not get region " + region.name() + " and its peer");
            }
            Thread.sleep(1);
        }
    }

    /**
     * Child-process arguments of an echo child: the setup, then (driver only) the plan and the RAM size.
     *
     * @param s        the setup
     * @param plan     the plan, or null for the backend
     * @param ramBytes the VM's RAM size (driver only)
     * @return the arguments
     */
    static List<String> args(Setup s, RunPlan plan, long ramBytes) {
        List<String> a = new ArrayList<>(s.toArgs());
        if (plan != null) {
            a.addAll(plan.toArgs());
            a.add(String.valueOf(ramBytes));
        }
        return a;
    }
}
