package dev.airlock.bench;

import dev.airlock.dma.BounceDmaOps;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;
import dev.airlock.memory.SharedMemory;
import dev.airlock.swiotlb.DmaDirection;
import dev.airlock.swiotlb.SwiotlbPool;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * The bounce cost of one buffer: {@link BounceDmaOps#mapSingle} then {@link BounceDmaOps#unmapSingle}
 * of a buffer in the driver's private RAM (an anonymous private mapping) through a swiotlb pool in
 * a memfd shared region, as a frontend does for every request buffer. Nothing else happens between
 * map and unmap (no device).
 *
 * <p>Compared against {@link CopyBaseline#copy} with the same {@code sizeBytes}, in the same run:
 * divide this throughput by the baseline's (both are operations per second). By design
 * {@link DmaDirection#TO_DEVICE} copies each byte once (in, at map), so its ideal ratio is 1;
 * {@link DmaDirection#FROM_DEVICE} copies twice (in at map, so the device never sees an earlier
 * mapping's bytes, and back at unmap), so its ideal ratio is 0.5. The gap to the ideal is the pool's
 * bookkeeping: the area lock, the slot search, the checks.
 *
 * <p>Run: {@code bin/bench 'BounceBench|CopyBaseline'}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class BounceBench {
    private static final long PRIVATE_GPA = 0x4000_0000L;
    private static final long SHARED_GPA = 0x1_0000_0000L;
    private static final long POOL_BYTES = 1 << 20;

    /** Buffer size in bytes, as in {@link CopyBaseline}. */
    @Param({"4096", "65536"})
    public int sizeBytes;

    /** Which way the data flows. */
    @Param({"TO_DEVICE", "FROM_DEVICE"})
    public DmaDirection direction;

    private PrivateMemory ram;
    private SharedMemory shared;
    private BounceDmaOps dma;

    /** Created by JMH. */
    public BounceBench() {
    }

    /** Maps private RAM and the pool's shared region, and fills the buffer. */
    @Setup(Level.Trial)
    public void setUp() {
        ram = new PrivateMemory("bench-ram", 1 << 20);
        shared = SharedMemory.create("bench-pool", POOL_BYTES);
        GuestAddressSpace space = new GuestAddressSpace("bench-driver");
        space.add(ram.region(PRIVATE_GPA));
        space.add(shared.region(SHARED_GPA));
        dma = new BounceDmaOps(SwiotlbPool.create("bench", shared.segment(), SHARED_GPA, space));
        ram.segment().asSlice(0, sizeBytes).fill((byte) 0x5a);
    }

    /** Unmaps both regions. */
    @TearDown(Level.Trial)
    public void tearDown() {
        shared.close();
        ram.close();
    }

    /**
     * One map and unmap of the buffer.
     *
     * @return the DMA address of the mapping, so the work is not eliminated
     */
    @Benchmark
    public long mapUnmap() {
        long dmaAddr = dma.mapSingle(PRIVATE_GPA, sizeBytes, direction);
        dma.unmapSingle(dmaAddr, sizeBytes, direction);
        return dmaAddr;
    }
}
