package dev.airlock.bench;

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

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;

/**
 * The physical limit for bulk data: one {@link MemorySegment#copy} of the buffer between two
 * native segments. Bounce benchmarks are reported as a ratio to this, measured in the same run.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class CopyBaseline {
    /** Buffer size in bytes. */
    @Param({"4096", "65536"})
    public int sizeBytes;

    private Arena arena;
    private MemorySegment src;
    private MemorySegment dst;

    /** Allocates page-aligned source and destination buffers. */
    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofConfined();
        src = arena.allocate(sizeBytes, 4096);
        dst = arena.allocate(sizeBytes, 4096);
        src.fill((byte) 0x5a);
    }

    /** Frees the buffers. */
    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    /**
     * One copy of the buffer.
     *
     * @return the destination, so the copy is not eliminated
     */
    @Benchmark
    public MemorySegment copy() {
        MemorySegment.copy(src, 0, dst, 0, sizeBytes);
        return dst;
    }
}
