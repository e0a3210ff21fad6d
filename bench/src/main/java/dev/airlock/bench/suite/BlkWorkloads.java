package dev.airlock.bench.suite;

import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.devices.blk.BlkOptions;
import dev.airlock.devices.blk.BlockDevice;
import dev.airlock.devices.blk.BlockDeviceOptions;
import dev.airlock.hypervisor.process.RemoteVmContext;
import dev.airlock.transport.DeviceHost;
import dev.airlock.transport.NotificationMode;
import dev.airlock.transport.VirtioFrontend;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The virtio-blk figures on the multi-process runtime: the backend serves a read-only
 * {@link BlkDevice} over an image file (written by the harness, so it sits in the page cache), and
 * the driver (the secondary VM) reads through a {@link BlockDevice} into its private RAM, every
 * buffer bounced through the swiotlb pool: 4 KiB at random sector-aligned offsets with
 * {@value #RANDOM_DEPTH} in flight, and 64 KiB sequentially with {@value #SEQUENTIAL_DEPTH} in flight.
 */
final class BlkWorkloads {
    /** Size of the image file. */
    static final long IMAGE_BYTES = 64L << 20;
    /** Reads in flight in the random 4 KiB figure. */
    static final int RANDOM_DEPTH = Catalog.BLK_RANDOM_DEPTH;
    /** Reads in flight in the sequential 64 KiB figure. */
    static final int SEQUENTIAL_DEPTH = Catalog.BLK_SEQUENTIAL_DEPTH;
    /** Private RAM the driver needs: the I/O area, then the read buffers. */
    static final long RAM_BYTES = 4L << 20;
    private static final long IO_AREA_GPA = 0;
    private static final long IO_AREA_BYTES = 1L << 20;
    private static final long BUFFERS_GPA = 1L << 20;
    private static final int SMALL = 4096;
    private static final int LARGE = 64 * 1024;
    private static final int SECTOR = 512;

    private BlkWorkloads() {
    }

    /**
     * The backend's device, added in slot 0 in doorbell mode.
     *
     * @param host  the device host
     * @param s     the setup
     * @param image the image file
     * @return the device, to close after the host
     * @throws IOException if the image cannot be opened
     */
    static BlkDevice serve(DeviceHost host, EchoWorkloads.Setup s, Path image) throws IOException {
        BlkDevice device = BlkDevice.open(BlkOptions.builder(image).readOnly(true).serial("airlock-bench").build());
        host.addDevice(s.kind(), s.region(), 0, device, s.polling() ? NotificationMode.POLLING : NotificationMode.DOORBELL);
        return device;
    }

    /**
     * The backend process: serves the device until the first stdin line, then prints
     * {@code STATS requests protocolErrors internalErrors faults}.
     *
     * @param out   stdout
     * @param in    stdin
     * @param s     the setup
     * @param image the image file
     * @throws Exception if anything fails
     */
    static void backend(PrintStream out, BufferedReader in, EchoWorkloads.Setup s, Path image) throws Exception {
        try (RemoteVmContext vm = RemoteVmContext.attach(s.socket(), s.credential())) {
            EchoWorkloads.awaitRunningWithRegion(vm, s.region());
            BlkDevice device;
            try (DeviceHost host = new DeviceHost(vm)) {
                device = serve(host, s, image);
                out.println("READY");
                in.readLine();
                out.println("STATS " + device.metrics().reads() + " " + host.protocolErrors() + " " + host.internalErrors() + " "
                        + (host.faultCount(s.region().secondary(), 0) + device.metrics().ioErrors() + device.metrics().faults()));
            }
            device.close();
        }
    }

    /**
     * The driver's measurements, on an open frontend.
     *
     * @param out      stdout
     * @param plan     the runs
     * @param s        the setup
     * @param guest    the secondary's context
     * @param frontend the device's frontend, not initialised
     * @throws Exception if a run fails
     */
    static void measure(PrintStream out, RunPlan plan, EchoWorkloads.Setup s, RemoteVmContext guest, VirtioFrontend frontend)
            throws Exception {
        String p = Catalog.blkPrefix(s.kind());
        BlockDeviceOptions options = BlockDeviceOptions.of(IO_AREA_GPA, IO_AREA_BYTES).withQueueDepth(RANDOM_DEPTH);
        try (BlockDevice blk = BlockDevice.open(frontend, guest.addressSpace(), options)) {
            long sectors = Math.min(blk.capacitySectors(), IMAGE_BYTES / SECTOR);
            SplittableRandom random = new SplittableRandom(42);
            long smallBlocks = sectors * SECTOR / SMALL;
            plan.execute(out, (durationNs, report) -> {
                long[] r = reads(blk, RANDOM_DEPTH, SMALL, durationNs, i -> random.nextLong(smallBlocks) * (SMALL / SECTOR));
                report.value(p + ".randread4k", r[0] * 1e9 / r[1]);
            });
            long largeBlocks = sectors * SECTOR / LARGE;
            plan.execute(out, (durationNs, report) -> {
                long[] r = reads(blk, SEQUENTIAL_DEPTH, LARGE, durationNs, i -> (i % largeBlocks) * (LARGE / SECTOR));
                report.value(p + ".seqread64k", r[0] * (double) LARGE * 1e9 / r[1]);
            });
        }
    }

    /** Where the i-th read of a run starts, in sectors. */
    @FunctionalInterface
    private interface Offsets {
        long sector(long i);
    }

    /**
     * Keeps {@code depth} reads of {@code size} bytes in flight for {@code durationNs}; returns how
     * many completed within it (the rest are waited for and not counted) and how long that was in ns.
     */
    private static long[] reads(BlockDevice blk, int depth, int size, long durationNs, Offsets offsets) throws Exception {
        BlockingQueue<Integer> free = new ArrayBlockingQueue<>(depth);
        for (int i = 0; i < depth; i++) {
            free.add(i);
        }
        AtomicLong completed = new AtomicLong();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        long start = System.nanoTime();
        long counted = -1;
        long elapsedNs = 0;
        for (long i = 0; counted < 0; i++) {
            Integer slot = free.take();
            if (failure.get() != null) {
                throw new IllegalStateException("a read failed", failure.get());
            }
            long now = System.nanoTime();
            if (now - start >= durationNs) {
                counted = completed.get();
                elapsedNs = now - start;
                free.add(slot);
                break;
            }
            blk.readAsync(offsets.sector(i), BUFFERS_GPA + (long) slot * size, size).whenComplete((v, e) -> {
                if (e != null) {
                    failure.compareAndSet(null, e);
                }
                completed.incrementAndGet();
                free.add(slot);
            });
        }
        for (int i = 0; i < depth; i++) { // wait for every read still in flight
            free.take();
        }
        if (failure.get() != null) {
            throw new IllegalStateException("a read failed", failure.get());
        }
        return new long[] {counted, elapsedNs};
    }
}
