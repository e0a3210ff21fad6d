package dev.airlock.bench;

import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtqueueDevice;
import dev.airlock.virtio.VirtqueueDriver;
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
 * The latency of one request between two cores in polling mode: the benchmark thread is the driver
 * ({@code add}, {@code kickPrepare}, then spin on {@code reap} until the token comes back); a
 * background device thread busy-polls {@code pop()}, copies the 64-byte out buffer into the 64-byte
 * in buffer (an echo backend), and calls {@code pushUsed} and {@code needsInterrupt} at once. No
 * notification is delivered: the driver disabled callbacks and the device never re-enables
 * notifications, but both still make the decisions (with their full fences), as a polling
 * implementation must. The request and the memory are as in {@link VirtqueueRoundTripBench}
 * (direct DMA, EVENT_IDX, two mappings of one memfd).
 *
 * <p>{@code notificationChecks=false} is the control that says what those decisions cost: the
 * driver skips {@code kickPrepare} and the device skips {@code needsInterrupt}, leaving only the ring
 * publication (release/acquire) and the payload. The difference is the two full fences, each of
 * which waits, on the critical path, for the store just made to a line the other core holds.
 *
 * <p>Compared against {@link PingPongBaseline#roundTrip} (a bare cache-line ping-pong between two
 * threads), in the same run: target p50 at most 3 times the baseline's p50. Run:
 * {@code bin/bench 'VirtqueuePingPongBench|PingPongBaseline'}; read the p0.50 and p0.99 lines.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class VirtqueuePingPongBench {
    private static final Integer TOKEN = 7;

    /** Whether each side makes its notification decision ({@code kickPrepare}, {@code needsInterrupt}). */
    @Param({"true", "false"})
    public boolean notificationChecks;

    private QueueBed bed;
    private ScatterGather request;
    private VirtqueueDriver.UsedHandler<Integer> handler;
    private Thread deviceThread;
    private volatile boolean running;
    private volatile Throwable deviceFailure;
    private long usedLength;

    /** Created by JMH. */
    public VirtqueuePingPongBench() {
    }

    /** Builds the queue and starts the device thread. */
    @Setup(Level.Trial)
    public void setUp() {
        bed = new QueueBed(false);
        request = bed.request();
        bed.buffer(0, 64).fill((byte) 0x5a);
        handler = (token, lengthBytes) -> usedLength += lengthBytes + token;
        bed.driver.disableCallbacks();
        running = true;
        VirtqueueDevice device = bed.device;
        boolean checks = notificationChecks;
        deviceThread = Thread.ofPlatform().name("virtqueue-device").daemon().start(() -> {
            try {
                runDevice(device, checks);
            } catch (Throwable t) {
                deviceFailure = t;
            }
        });
    }

    private void runDevice(VirtqueueDevice device, boolean checks) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment scratch = arena.allocate(64, 64);
            device.disableNotifications();
            while (running) {
                DescriptorChain chain = device.pop();
                if (chain == null) {
                    Thread.onSpinWait();
                    continue;
                }
                chain.readFrom(0, scratch);
                chain.writeTo(0, scratch);
                device.pushUsed(chain, 64);
                if (checks) {
                    // The decision is made (fence included) but not acted on: the driver polls. With
                    // callbacks disabled it is true only when used idx crosses the far used_event, once
                    // per 2^16 requests (disableCallbacks is a hint, as in Linux).
                    device.needsInterrupt();
                }
            }
        }
    }

    /**
     * Stops the device thread and frees the queue.
     *
     * @throws InterruptedException if interrupted while joining
     */
    @TearDown(Level.Trial)
    public void tearDown() throws InterruptedException {
        running = false;
        deviceThread.join();
        bed.close();
        if (deviceFailure != null) {
            throw new IllegalStateException("device thread failed", deviceFailure);
        }
    }

    /**
     * One request to the device thread and back.
     *
     * @return a sum of the used lengths and tokens seen, so nothing is eliminated
     */
    @Benchmark
    public long roundTrip() {
        if (!bed.driver.add(request, TOKEN)) {
            throw new IllegalStateException("queue full: " + bed.driver);
        }
        if (notificationChecks) {
            bed.driver.kickPrepare();
        }
        while (bed.driver.reap(handler, 1) == 0) {
            if (deviceFailure != null) {
                throw new IllegalStateException("device thread failed", deviceFailure);
            }
            Thread.onSpinWait();
        }
        return usedLength;
    }
}
