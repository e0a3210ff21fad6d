package dev.airlock.bench;

import dev.airlock.devices.blk.BlkConfigLayout;
import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.devices.blk.BlockDevice;
import dev.airlock.devices.blk.BlockDeviceOptions;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;
import dev.airlock.memory.SharedMemory;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.vhostuser.VhostUserDriverTransport;
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
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Airlock's vhost-user frontend: the guest's {@link BlockDevice} (buffers in private RAM, bounced
 * through the shared region) over {@link VirtioFrontend} over {@link VhostUserDriverTransport},
 * reading a raw image in {@code /dev/shm} through a vhost-user-blk backend in another process. The
 * {@code backend} parameter picks it: {@code qsd} is {@code qemu-storage-daemon --export
 * type=vhost-user-blk} (the baseline: QEMU's C backend, {@code driver=file} with its defaults), and
 * {@code airlock} is Airlock's own {@code VhostUserBackend} serving a {@link BlkDevice}, in a child
 * JVM started by {@link VhostUserBlkBackendMain}. Each trial gets a fresh image of 256 MiB of data
 * and a fresh backend process, so both sides cross the same process boundary. The ratio (airlock
 * requests/s ÷ qsd requests/s, per workload) compares Airlock's backend with QEMU's, the frontend
 * held fixed; both figures also carry the frontend's own cost.
 *
 * <p>Each invocation reads {@link #BATCH} blocks keeping the {@link #access} workload's depth in
 * flight, as {@link BlkBench} does: {@code rand4k_qd1} and {@code rand4k_qd32} at random 4
 * KiB-aligned offsets, {@code seq64k_qd32} 64 KiB blocks sequentially (wrapping). The benchmark fails in setup,
 * naming the path, if {@code qemu-storage-daemon} is not installed (JMH prints the failure and goes
 * on; pass {@code -foe true} to make the run exit non-zero).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xmx1g"})
public class VhostUserBlkBench {
    /** Requests per invocation. */
    public static final int BATCH = 256;
    /** Where the baseline is looked for. */
    public static final Path QSD = Path.of("/usr/bin/qemu-storage-daemon");
    private static final long IMAGE_BYTES = 256L << 20;
    private static final long RAM_GPA = 0;
    private static final long RAM_BYTES = 16L << 20;
    /** The block device's I/O area (control slots and staging) at the start of RAM; read buffers follow it. */
    private static final long IO_AREA_BYTES = 1L << 20;
    private static final long BUFFERS_GPA = RAM_GPA + IO_AREA_BYTES;
    private static final long SHARED_GPA = 0x4000_0000L;
    private static final long SHARED_BYTES = 32L << 20;
    private static final long START_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(30);
    private static final long REQUEST_TIMEOUT_S = 30;

    /**
     * The workload: block size, pattern and depth, {@code rand4k_qd1}, {@code rand4k_qd32} or
     * {@code seq64k_qd32}. (Named so that it sorts before {@link #backend}: JMH then runs the two
     * backends back to back for each workload, which keeps drifts in machine load out of the ratio.)
     */
    @Param({"rand4k_qd1", "rand4k_qd32", "seq64k_qd32"})
    public String access;

    /** The vhost-user-blk backend process: {@code qsd} (the baseline) or {@code airlock}. */
    @Param({"qsd", "airlock"})
    public String backend;

    private Path dir;
    private Path image;
    private Path log;
    private Process child;
    private Thread reaper;
    private PrivateMemory ram;
    private SharedMemory shared;
    private VhostUserDriverTransport transport;
    private VirtioFrontend frontend;
    private BlockDevice blk;
    private boolean random;
    private int depth;
    private int blockBytes;
    private long blocks;
    private long nextSeq;
    private final SplittableRandom rng = new SplittableRandom(42);

    /**
     * Creates the image, starts the backend process and opens the block device over it.
     *
     * @throws Exception if the image cannot be made, the backend does not start or the device does not open
     */
    @Setup(Level.Trial)
    public void setUp() throws Exception {
        random = access.startsWith("rand4k");
        blockBytes = random ? 4096 : 65536;
        depth = access.endsWith("qd1") ? 1 : 32;
        blocks = IMAGE_BYTES / blockBytes;
        try {
            dir = Files.createTempDirectory(Path.of("/dev/shm"), "airlock-vublkbench-");
            image = dir.resolve("disk.raw");
            log = dir.resolve(backend + ".log");
            byte[] chunk = writeImage(image);
            Path socket = dir.resolve(backend + ".sock");
            child = startBackend(socket);
            Process started = child;
            reaper = new Thread(() -> stop(started));
            Runtime.getRuntime().addShutdownHook(reaper);
            awaitListening(socket);
            ram = new PrivateMemory("ram", RAM_BYTES);
            shared = SharedMemory.create("vu-shared", SHARED_BYTES);
            GuestAddressSpace space = new GuestAddressSpace("vu-frontend");
            space.add(ram.region(RAM_GPA));
            space.add(shared.region(SHARED_GPA));
            transport = VhostUserDriverTransport.connect(socket, BlkDevice.DEVICE_ID,
                    BlkConfigLayout.CONFIG_LENGTH, shared, SHARED_GPA, Duration.ofSeconds(5));
            frontend = new VirtioFrontend(transport, space);
            blk = BlockDevice.open(frontend, space, BlockDeviceOptions.of(RAM_GPA, IO_AREA_BYTES).withQueueDepth(depth));
            checkData(chunk);
        } catch (Exception | Error e) {
            tearDown();
            throw e;
        }
    }

    /** 256 MiB of pseudo-random data, written (not a sparse file), so that reads are of data, not holes. */
    private static byte[] writeImage(Path image) throws IOException {
        byte[] chunk = new byte[1 << 20];
        new SplittableRandom(1).nextBytes(chunk);
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            for (long off = 0; off < IMAGE_BYTES; off += chunk.length) {
                f.write(chunk);
            }
        }
        return chunk;
    }

    private Process startBackend(Path socket) throws IOException {
        List<String> command;
        if (backend.equals("qsd")) {
            if (!Files.isExecutable(QSD)) {
                throw new IllegalStateException("qemu-storage-daemon, the baseline, is not installed at " + QSD
                        + " (Debian/Ubuntu: apt-get install qemu-system-common); run with -p backend=airlock to skip it");
            }
            command = List.of(QSD.toString(),
                    "--blockdev", "driver=file,node-name=disk0,filename=" + image,
                    "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=" + socket
                            + ",writable=on");
        } else if (backend.equals("airlock")) {
            String java = ProcessHandle.current().info().command()
                    .orElseThrow(() -> new IllegalStateException("cannot tell which java binary runs this JVM"));
            command = List.of(java, "--enable-native-access=ALL-UNNAMED", "-Xmx512m",
                    "-cp", System.getProperty("java.class.path"),
                    VhostUserBlkBackendMain.class.getName(), socket.toString(), image.toString());
        } else {
            throw new IllegalArgumentException("unknown backend: " + backend);
        }
        return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    /** Waits for the socket file (and, for Airlock's backend, its LISTENING line, printed once it listens). */
    private void awaitListening(Path socket) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + START_TIMEOUT_NS;
        while (!Files.exists(socket)
                || backend.equals("airlock") && !Files.readString(log).contains(VhostUserBlkBackendMain.LISTENING)) {
            if (!child.isAlive() || System.nanoTime() > deadline) {
                throw new IllegalStateException(backend + " backend did not listen on " + socket
                        + (child.isAlive() ? " within 30 s" : " (exited " + child.exitValue() + ")") + ": " + Files.readString(log));
            }
            Thread.sleep(20);
        }
    }

    /** Reads one block through the device and compares it with what was written, so the figures are of real reads. */
    private void checkData(byte[] chunk) throws IOException {
        byte[] back = new byte[blockBytes];
        long offset = 3L * blockBytes;
        blk.readBytes(offset, back, 0, back.length);
        int at = (int) (offset % chunk.length);
        if (!Arrays.equals(back, 0, back.length, chunk, at, at + back.length)) {
            throw new IllegalStateException(backend + " backend returned wrong data at offset " + offset);
        }
    }

    /**
     * Closes the device, stops the backend process and deletes the image; prints the backend's output
     * if it said anything.
     *
     * @throws IOException if the files cannot be deleted
     */
    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        if (blk != null) {
            blk.close();
        }
        if (frontend != null) {
            frontend.close(); // and the transport
        } else if (transport != null) {
            transport.close();
        }
        if (child != null) {
            stop(child);
            Runtime.getRuntime().removeShutdownHook(reaper);
        }
        if (shared != null) {
            shared.close();
        }
        if (ram != null) {
            ram.close();
        }
        if (log != null && Files.exists(log)) {
            String said = Files.readString(log).replace(VhostUserBlkBackendMain.LISTENING + "\n", "").strip();
            if (!said.isEmpty()) {
                System.err.println(backend + " backend output: " + said);
            }
            Files.delete(log);
        }
        if (image != null) {
            Files.deleteIfExists(image);
        }
        if (dir != null) {
            try (var left = Files.list(dir)) {
                for (Path p : left.toList()) {
                    Files.deleteIfExists(p); // the socket file, if the backend did not remove it
                }
            }
            Files.deleteIfExists(dir);
        }
        blk = null;
        frontend = null;
        transport = null;
        child = null;
        reaper = null;
        shared = null;
        ram = null;
        log = null;
        image = null;
        dir = null;
    }

    private static void stop(Process process) {
        process.destroy();
        try {
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            process.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    private long nextBlock() {
        if (random) {
            return rng.nextLong(blocks);
        }
        long b = nextSeq;
        nextSeq = (nextSeq + 1) % blocks;
        return b;
    }

    /**
     * {@link #BATCH} reads through the vhost-user frontend, {@code depth} in flight.
     *
     * @return the number of reads, so nothing is eliminated
     * @throws Exception if a read fails or takes more than 30 s
     */
    @Benchmark
    @OperationsPerInvocation(BATCH)
    public int read() throws Exception {
        @SuppressWarnings("unchecked")
        CompletableFuture<Void>[] inFlight = new CompletableFuture[depth];
        for (int i = 0; i < BATCH; i++) {
            int slot = i % depth;
            if (inFlight[slot] != null) {
                inFlight[slot].get(REQUEST_TIMEOUT_S, TimeUnit.SECONDS);
            }
            long sector = nextBlock() * (blockBytes / 512);
            inFlight[slot] = blk.readAsync(sector, BUFFERS_GPA + (long) slot * blockBytes, blockBytes);
        }
        for (CompletableFuture<Void> f : inFlight) {
            if (f != null) {
                f.get(REQUEST_TIMEOUT_S, TimeUnit.SECONDS);
            }
        }
        return BATCH;
    }
}
