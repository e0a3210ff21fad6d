package dev.airlock.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.util.concurrent.TimeUnit;

/**
 * The cross-core floor for a request/response: a bare cache-line ping-pong between the benchmark
 * thread and an echo thread that busy-polls. The benchmark thread release-stores a sequence number
 * into one cache line; the echo thread acquire-loads it and release-stores it into another line;
 * the benchmark thread spins until it sees it. Virtqueue and transport round trips are reported as
 * a multiple of this p50, measured in the same run.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class PingPongBaseline {
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();
    private static final long PING_OFFSET = 0;
    private static final long PONG_OFFSET = 128; // separate cache lines (and adjacent-line prefetch pairs)

    private Arena arena;
    private MemorySegment lines;
    private Thread echo;
    private volatile boolean running;
    private long sequence;

    /** Starts the echo thread. */
    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        lines = arena.allocate(256, 128);
        running = true;
        echo = Thread.ofPlatform().name("pingpong-echo").daemon().start(() -> {
            long seen = 0;
            while (running) {
                // Pairs with the benchmark thread's setRelease of PING.
                long ping = (long) LONG.getAcquire(lines, PING_OFFSET);
                if (ping != seen) {
                    seen = ping;
                    // Publishes the echo; pairs with the getAcquire in roundTrip().
                    LONG.setRelease(lines, PONG_OFFSET, ping);
                } else {
                    Thread.onSpinWait();
                }
            }
        });
    }

    /**
     * Stops the echo thread.
     *
     * @throws InterruptedException if interrupted while joining
     */
    @TearDown(Level.Trial)
    public void tearDown() throws InterruptedException {
        running = false;
        echo.join();
        arena.close();
    }

    /**
     * One round trip through two cache lines.
     *
     * @return the echoed sequence number
     */
    @Benchmark
    public long roundTrip() {
        long next = ++sequence;
        // Publishes the ping; pairs with the echo thread's getAcquire.
        LONG.setRelease(lines, PING_OFFSET, next);
        long pong;
        while ((pong = (long) LONG.getAcquire(lines, PONG_OFFSET)) != next) {
            Thread.onSpinWait();
        }
        return pong;
    }
}
