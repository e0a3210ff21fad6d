package dev.airlock.cli.machine;

import dev.airlock.devices.blk.BlockDevice;
import dev.airlock.devices.blk.BlockDeviceOptions;
import dev.airlock.devices.console.Console;
import dev.airlock.devices.rng.EntropySource;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.swiotlb.SwiotlbStats;
import dev.airlock.transport.VirtioFrontend;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.zip.CRC32C;

/**
 * The demo's guest application, on the driver side of a secondary VM: writes random data to each
 * block device and reads it back (CRC32C of both), prints a line through the console, reads entropy.
 * Every buffer lives in the VM's private RAM and is bounced through the device's pool.
 *
 * <p>Private RAM layout from {@code ramGpa}: the block device's I/O area (1 MiB), the workload's
 * buffers ({@code depth} chunks), the console's buffers, the entropy source's buffers. The block
 * devices take their turns, one after the other, in the same I/O area and buffers.
 */
public final class GuestWorkload {
    /** Bytes per block request. */
    public static final int CHUNK_BYTES = 128 << 10;
    private static final long BLK_IO_AREA_BYTES = 1L << 20;

    /**
     * What to do.
     *
     * @param blkBytes    data to write and read back, a multiple of {@link #CHUNK_BYTES}
     * @param depth       block requests in flight, 1 to 64
     * @param seed        seed of the data
     * @param consoleLine the line to print through the console
     */
    public record Options(long blkBytes, int depth, long seed, String consoleLine) {
        /** Checks the fields. */
        public Options {
            if (blkBytes <= 0 || blkBytes % CHUNK_BYTES != 0) {
                throw new IllegalArgumentException("the data size must be a positive multiple of " + CHUNK_BYTES + ": " + blkBytes);
            }
            if (depth < 1 || depth > 64) {
                throw new IllegalArgumentException("queue depth 1 to 64: " + depth);
            }
        }

        /**
         * Private RAM the workload needs.
         *
         * @return bytes
         */
        public long ramBytes() {
            return BLK_IO_AREA_BYTES + (long) depth * CHUNK_BYTES + Console.RAM_BYTES + EntropySource.RAM_BYTES;
        }
    }

    /**
     * A device the guest found.
     *
     * @param type     its type
     * @param name     its name in reports, for example {@code blk@0 over msgq-mmio} or
     *                 {@code blk@vhost-user:vub.sock}
     * @param frontend its frontend, not yet initialised
     */
    public record GuestDevice(DeviceSpec.DeviceType type, String name, VirtioFrontend frontend) {
        /**
         * A device over the hypervisor.
         *
         * @param spec     what it is
         * @param frontend its frontend, not yet initialised
         */
        public GuestDevice(DeviceSpec spec, VirtioFrontend frontend) {
            this(spec.type(), spec.toString(), frontend);
        }

        @Override
        public String toString() {
            return name;
        }
    }

    /**
     * What the workload did on one block device.
     *
     * @param device   the device's name
     * @param written  bytes written (0 if the disk is smaller than one request)
     * @param writeCrc CRC32C of what was written
     * @param readCrc  CRC32C of what was read back
     * @param writeNs  time to write (including generating data) and flush
     * @param readNs   time to read back (including checksumming)
     * @param requests block requests completed
     */
    public record BlkResult(String device, long written, long writeCrc, long readCrc, long writeNs, long readNs, long requests) {
        /**
         * Whether the data came back intact.
         *
         * @return nothing written, or the checksums agree
         */
        public boolean intact() {
            return written == 0 || writeCrc == readCrc;
        }
    }

    /**
     * What the workload did.
     *
     * @param devices     the names of the devices used
     * @param blk         what happened on each block device, in the order of {@code devices}
     * @param consoleLine the line sent through the console, or null
     * @param entropy     bytes read from the entropy device, or null
     * @param pools       each device's bounce pool
     */
    public record Result(List<String> devices, List<BlkResult> blk, String consoleLine, byte[] entropy, List<SwiotlbStats> pools) {
        /** Copies the lists. */
        public Result {
            devices = List.copyOf(devices);
            blk = List.copyOf(blk);
            pools = List.copyOf(pools);
        }

        /**
         * Whether everything checked out.
         *
         * @return data intact on every block device, entropy not all zero
         */
        public boolean passed() {
            boolean blkOk = blk.stream().allMatch(BlkResult::intact);
            boolean entropyOk = entropy == null || anyNonZero(entropy);
            return blkOk && entropyOk;
        }

        private static boolean anyNonZero(byte[] bytes) {
            for (byte b : bytes) {
                if (b != 0) {
                    return true;
                }
            }
            return false;
        }

        /**
         * Bytes copied by the bounce pools, both ways.
         *
         * @return the sum over pools
         */
        public long bytesBounced() {
            return pools.stream().mapToLong(p -> p.bytesToDevice() + p.bytesFromDevice()).sum();
        }

        /**
         * The report lines.
         *
         * @return one line per fact, indented for the demo's report
         */
        public List<String> report() {
            List<String> lines = new ArrayList<>();
            lines.add(String.format("  devices           %s", devices));
            for (BlkResult b : blk) {
                if (b.written() == 0) {
                    lines.add(String.format("  blk               %s: smaller than one %d KiB request, nothing written", b.device(),
                            CHUNK_BYTES >> 10));
                    continue;
                }
                lines.add(String.format("  blk               %s: wrote %s in %d KiB requests, flushed, read it back: %,d requests",
                        b.device(), ByteSize.format(b.written()), CHUNK_BYTES >> 10, b.requests()));
                lines.add(String.format("  blk CRC32C        written %08x, read %08x%s", b.writeCrc(), b.readCrc(),
                        b.intact() ? "" : "  MISMATCH"));
                lines.add(String.format("  blk throughput    write %.0f MiB/s, read %.0f MiB/s (with data generation and checksums)",
                        mibPerSecond(b.written(), b.writeNs()), mibPerSecond(b.written(), b.readNs())));
            }
            if (consoleLine != null) {
                lines.add(String.format("  console           sent \"%s\"", consoleLine));
            }
            if (entropy != null) {
                lines.add(String.format("  rng               %d bytes: %s...", entropy.length, HexFormat.of().formatHex(entropy, 0, 16)));
            }
            lines.add(String.format("  bytes bounced     %s (to devices %,d, from devices %,d)", ByteSize.human(bytesBounced()),
                    pools.stream().mapToLong(SwiotlbStats::bytesToDevice).sum(), pools.stream().mapToLong(SwiotlbStats::bytesFromDevice).sum()));
            for (SwiotlbStats p : pools) {
                lines.add(String.format("  pool %-12s high water %,d of %,d slots (%s of %s), failed mappings %d", p.poolName(),
                        p.highWaterSlots(), p.totalSlots(), ByteSize.human(p.highWaterSlots() * 2048),
                        ByteSize.format(p.totalSlots() * 2048), p.failedMappings()));
            }
            return lines;
        }

        private static double mibPerSecond(long bytes, long ns) {
            return ns <= 0 ? 0 : bytes / (ns / 1e9) / (1 << 20);
        }
    }

    private GuestWorkload() {
    }

    /**
     * Runs the workload on whichever of blk, console and rng the guest has: every block device gets
     * the same data written and read back, one device after the other.
     *
     * @param devices the guest's devices
     * @param space   the VM's address space
     * @param ramGpa  where the workload's private RAM starts ({@link Options#ramBytes()} of it)
     * @param options what to do
     * @return the result
     * @throws IOException if a device fails
     */
    public static Result run(List<GuestDevice> devices, GuestAddressSpace space, long ramGpa, Options options) throws IOException {
        long blkIoGpa = ramGpa;
        long buffersGpa = blkIoGpa + BLK_IO_AREA_BYTES;
        long consoleGpa = buffersGpa + (long) options.depth() * CHUNK_BYTES;
        long rngGpa = consoleGpa + Console.RAM_BYTES;
        List<BlkResult> blkResults = new ArrayList<>();
        String line = null;
        byte[] entropy = null;
        for (GuestDevice d : devices) {
            switch (d.type()) {
                case BLK -> {
                    try (BlockDevice blk = BlockDevice.open(d.frontend(), space,
                            BlockDeviceOptions.of(blkIoGpa, BLK_IO_AREA_BYTES).withQueueDepth(options.depth()))) {
                        long written = Math.min(options.blkBytes(), blk.capacitySectors() * 512 / CHUNK_BYTES * CHUNK_BYTES);
                        long[] crcs = {0, 0};
                        long[] times = {0, 0};
                        blockRoundTrip(blk, space, buffersGpa, written, options, crcs, times);
                        blkResults.add(new BlkResult(d.name(), written, crcs[0], crcs[1], times[0], times[1],
                                blk.completedRequests()));
                    }
                }
                case CONSOLE -> {
                    Console console = new Console(d.frontend(), space.translate(consoleGpa, Console.RAM_BYTES), consoleGpa);
                    line = options.consoleLine();
                    OutputStream out = console.output();
                    out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
                    out.flush();
                    console.close();
                }
                case RNG -> {
                    try (EntropySource rng = new EntropySource(d.frontend(), space.translate(rngGpa, EntropySource.RAM_BYTES), rngGpa)) {
                        entropy = new byte[4096];
                        rng.read(entropy);
                    }
                }
            }
        }
        List<SwiotlbStats> pools = devices.stream().map(d -> d.frontend().pool().stats()).toList();
        return new Result(devices.stream().map(GuestDevice::name).toList(), blkResults, line, entropy, pools);
    }

    /** Writes {@code bytes} of seeded random data in chunks, {@code depth} in flight, flushes, reads back. */
    private static void blockRoundTrip(BlockDevice blk, GuestAddressSpace space, long buffersGpa, long bytes, Options options,
                                       long[] crcs, long[] times) throws IOException {
        int depth = options.depth();
        MemorySegment buffers = space.translate(buffersGpa, (long) depth * CHUNK_BYTES);
        List<CompletableFuture<Void>> inFlight = new ArrayList<>(java.util.Collections.nCopies(depth, null));
        long chunks = bytes / CHUNK_BYTES;
        SplittableRandom random = new SplittableRandom(options.seed());
        CRC32C crc = new CRC32C();
        long start = System.nanoTime();
        for (long c = 0; c < chunks; c++) {
            int slot = (int) (c % depth);
            await(inFlight.get(slot));
            MemorySegment buffer = buffers.asSlice((long) slot * CHUNK_BYTES, CHUNK_BYTES);
            for (long off = 0; off < CHUNK_BYTES; off += 8) {
                buffer.set(ValueLayout.JAVA_LONG_UNALIGNED, off, random.nextLong());
            }
            crc.update(buffer.asByteBuffer());
            inFlight.set(slot, blk.writeAsync(c * (CHUNK_BYTES / 512), buffersGpa + (long) slot * CHUNK_BYTES, CHUNK_BYTES));
        }
        for (CompletableFuture<Void> f : inFlight) {
            await(f);
        }
        blk.flush();
        times[0] = System.nanoTime() - start;
        crcs[0] = crc.getValue();
        buffers.fill((byte) 0);
        CRC32C readCrc = new CRC32C();
        start = System.nanoTime();
        java.util.Collections.fill(inFlight, null);
        for (long c = 0; c < chunks + depth; c++) {
            int slot = (int) (c % depth);
            if (inFlight.get(slot) != null) {
                await(inFlight.get(slot)); // chunk c - depth, completed in order of submission
                readCrc.update(buffers.asSlice((long) slot * CHUNK_BYTES, CHUNK_BYTES).asByteBuffer());
                inFlight.set(slot, null);
            }
            if (c < chunks) {
                inFlight.set(slot, blk.readAsync(c * (CHUNK_BYTES / 512), buffersGpa + (long) slot * CHUNK_BYTES, CHUNK_BYTES));
            }
        }
        times[1] = System.nanoTime() - start;
        crcs[1] = readCrc.getValue();
    }

    private static void await(CompletableFuture<Void> f) throws IOException {
        if (f == null) {
            return;
        }
        try {
            f.join();
        } catch (java.util.concurrent.CompletionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            throw new IOException("block request failed: " + e.getCause(), e.getCause());
        }
    }
}
