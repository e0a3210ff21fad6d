package dev.airlock.bench;

import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.devices.blk.BlkOptions;
import dev.airlock.devices.blk.BlockDevice;
import dev.airlock.devices.blk.BlockDeviceOptions;
import dev.airlock.hypervisor.InProcessHypervisor;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.transport.DeviceHost;
import dev.airlock.transport.DriverHost;
import dev.airlock.transport.TransportKind;
import dev.airlock.transport.VirtioFrontend;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * virtio-blk reads through Airlock's whole path on the in-process runtime: the guest's
 * {@link BlockDevice} (buffers in private RAM, bounced through the pool), the transport, the
 * backend's {@link BlkDevice} reading a raw image in {@code /dev/shm}. Baseline in the same run:
 * {@link #fileChannel} reads of the same file, same sizes and pattern, straight into a buffer. The
 * ratio (Airlock requests/s ÷ FileChannel reads/s) is the cost of the path; target ≥ 0.5 at queue
 * depth 32.
 *
 * <p>Each invocation reads {@link #BATCH} blocks keeping {@code depth} requests in flight:
 * {@code rand4k} at random 4 KiB-aligned offsets, {@code seq64k} sequentially (wrapping).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xmx1g"})
public class BlkBench {
    /** Requests per invocation. */
    public static final int BATCH = 256;
    private static final long IMAGE_BYTES = 256L << 20;
    private static final long RAM_BYTES = 64L << 20;
    private static final long IO_AREA_BYTES = 1L << 20;
    private static final long BUFFERS_GPA = IO_AREA_BYTES;

    /** The access pattern. */
    @Param({"rand4k", "seq64k"})
    public String pattern;

    /** Requests in flight. */
    @Param({"1", "32"})
    public int depth;

    /** The transport. */
    @Param({"MSGQ_MMIO", "SHMEM_DOORBELL"})
    public String transport;

    private Path dir;
    private Path image;
    private InProcessHypervisor hypervisor;
    private DeviceHost deviceHost;
    private DriverHost driverHost;
    private BlkDevice backend;
    private VirtioFrontend frontend;
    private BlockDevice blk;
    private FileChannel channel;
    private ByteBuffer[] fileBuffers;
    private int blockBytes;
    private long blocks;
    private long nextSeq;
    private final SplittableRandom random = new SplittableRandom(42);

    /**
     * Creates the image, the two VMs and the device.
     *
     * @throws IOException if the image cannot be made
     */
    @Setup(Level.Trial)
    public void setUp() throws IOException {
        blockBytes = pattern.equals("rand4k") ? 4096 : 65536;
        blocks = IMAGE_BYTES / blockBytes;
        dir = Files.createTempDirectory(Path.of("/dev/shm"), "airlock-blkbench-");
        image = dir.resolve("disk.raw");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            byte[] chunk = new byte[1 << 20];
            new SplittableRandom(1).nextBytes(chunk);
            for (long off = 0; off < IMAGE_BYTES; off += chunk.length) {
                f.write(chunk);
            }
        }
        hypervisor = new InProcessHypervisor();
        VmId host = hypervisor.createVm(VmSpec.primary("host", 16L << 20));
        VmId guest = hypervisor.createVm(VmSpec.secondary("guest", RAM_BYTES));
        hypervisor.connectMessageQueues(host, guest, 256);
        hypervisor.connectDoorbells(host, guest);
        hypervisor.startVm(host);
        hypervisor.startVm(guest);
        SharedRegionInfo region = hypervisor.createSharedRegion(host, guest, "blk", 32L << 20, 0x10_0000_0000L, 0x8_0000_0000L);
        TransportKind kind = TransportKind.valueOf(transport);
        deviceHost = new DeviceHost(hypervisor.context(host));
        backend = BlkDevice.open(BlkOptions.builder(image).build());
        deviceHost.addDevice(kind, region, 0, backend);
        VmContext guestVm = hypervisor.context(guest);
        driverHost = new DriverHost(guestVm, Duration.ofSeconds(5));
        frontend = new VirtioFrontend(driverHost.open(kind, region.id(), 0), guestVm.addressSpace());
        blk = BlockDevice.open(frontend, guestVm.addressSpace(), BlockDeviceOptions.of(0, IO_AREA_BYTES).withQueueDepth(64));
        channel = FileChannel.open(image, StandardOpenOption.READ);
        fileBuffers = new ByteBuffer[] {ByteBuffer.allocateDirect(blockBytes)};
    }

    /** Tears everything down and deletes the image. */
    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        blk.close();
        frontend.close();
        driverHost.close();
        deviceHost.close();
        backend.close();
        hypervisor.close();
        channel.close();
        Files.deleteIfExists(image);
        Files.deleteIfExists(dir);
    }

    private long nextBlock() {
        if (pattern.equals("rand4k")) {
            return random.nextLong(blocks);
        }
        long b = nextSeq;
        nextSeq = (nextSeq + 1) % blocks;
        return b;
    }

    /**
     * {@link #BATCH} reads through Airlock, {@code depth} in flight.
     *
     * @return the number of reads, so nothing is eliminated
     * @throws Exception if a read fails
     */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public int airlock() throws Exception {
        List<CompletableFuture<Void>> inFlight = new ArrayList<>(depth);
        for (int i = 0; i < depth; i++) {
            inFlight.add(null);
        }
        for (int i = 0; i < BATCH; i++) {
            int slot = i % depth;
            CompletableFuture<Void> previous = inFlight.get(slot);
            if (previous != null) {
                previous.get();
            }
            long sector = nextBlock() * (blockBytes / 512);
            inFlight.set(slot, blk.readAsync(sector, BUFFERS_GPA + (long) slot * blockBytes, blockBytes));
        }
        for (CompletableFuture<Void> f : inFlight) {
            if (f != null) {
                f.get();
            }
        }
        return BATCH;
    }

    /**
     * The baseline: {@link #BATCH} positional reads of the same file with {@link FileChannel}.
     *
     * @return bytes read
     * @throws IOException if a read fails
     */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long fileChannel() throws IOException {
        long total = 0;
        ByteBuffer b = fileBuffers[0];
        for (int i = 0; i < BATCH; i++) {
            b.clear();
            total += channel.read(b, nextBlock() * blockBytes);
        }
        return total;
    }
}
