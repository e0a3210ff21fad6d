package dev.airlock.cli;

import dev.airlock.cli.loopback.Loopback;
import dev.airlock.swiotlb.SwiotlbStats;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.PrintWriter;
import java.util.concurrent.Callable;

/**
 * {@code airlock demo}. Until the hypervisor, transports and devices exist, it runs the loopback:
 * a driver and a device thread moving random data both ways through one virtqueue, every buffer
 * bounced through a swiotlb pool in a memfd shared region.
 */
@Command(name = "demo", description = {
    "Runs the demo (for now the loopback; the VM demo comes with the devices).",
    "",
    "The loopback: a driver thread and a device thread share one split virtqueue in a",
    "memfd region that each maps separately; every buffer of the driver lives in its private memory",
    "and is bounced through a swiotlb pool in the shared region. Random data flows both ways;",
    "CRC32C checksums of each direction are compared. Exit 0 when both directions arrive intact."})
final class DemoCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--mib", defaultValue = "256", description = "MiB to move in each direction (default: ${DEFAULT-VALUE}).")
    long mib;

    @Option(names = "--buffer-kib", defaultValue = "64", description = "KiB per buffer, up to 256 (default: ${DEFAULT-VALUE}).")
    int bufferKib;

    @Option(names = "--queue-size", defaultValue = "256", description = "Virtqueue size, a power of two (default: ${DEFAULT-VALUE}).")
    int queueSize;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the random data (default: ${DEFAULT-VALUE}).")
    long seed;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        out.printf("airlock demo (loopback): %d MiB each way, %d KiB buffers, queue size %d%n", mib, bufferKib, queueSize);
        out.println("  driver: private RAM -> bounce DMA ops -> swiotlb pool in a memfd shared region -> split virtqueue");
        out.println("  device: its own mapping of the same memfd; translates the driver's DMA addresses; never sees private RAM");
        Loopback.Report r = Loopback.run(new Loopback.Options(mib << 20, bufferKib << 10, queueSize, seed));
        SwiotlbStats pool = r.pool();
        double seconds = r.elapsedNs() / 1e9;
        out.printf("  requests          %,d (kicks %,d, interrupts %,d; the rest suppressed by event index)%n",
                r.requests(), r.kicks(), r.interrupts());
        out.printf("  driver -> device  %,d bytes, CRC32C sent %08x received %08x%n", r.bytesToDevice(), r.driverSentCrc(), r.deviceReceivedCrc());
        out.printf("  device -> driver  %,d bytes, CRC32C sent %08x received %08x%n", r.bytesFromDevice(), r.deviceSentCrc(), r.driverReceivedCrc());
        out.printf("  bounce pool       %s%n", pool);
        out.printf("  throughput        %.0f MiB/s each way (%.2f s, including random data generation and checksums)%n",
                r.bytesToDevice() / seconds / (1 << 20), seconds);
        out.println(r.intact() ? "  result            PASS: both directions intact" : "  result            FAIL: checksums differ");
        return r.intact() ? 0 : Airlock.EXIT_CHECK_FAILED;
    }
}
