package dev.airlock.bench;

import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.ScatterGather;
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
import org.openjdk.jmh.infra.Blackhole;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;

/**
 * The CPU cost of one request through the split virtqueue, both sides on one thread (no cache-line
 * transfers, no waiting): driver {@code add} → {@code kickPrepare} → device {@code pop} → the device
 * copies the 64-byte out buffer into the 64-byte in buffer (an echo backend) → {@code pushUsed} →
 * {@code needsInterrupt} → driver {@code reap}. The request is one device-readable and one
 * device-writable buffer of 64 bytes in two ring descriptors; EVENT_IDX is on; the device's and
 * driver's views are two mappings of one memfd (see {@link QueueBed}).
 *
 * <p>{@code dma=direct}: the buffers are already in the shared region ({@code DirectDmaOps}, no
 * copies). {@code dma=bounce}: they are in private RAM ({@code BounceDmaOps}): per round trip two
 * maps and two unmaps, with 64-byte copies in for both buffers and back for the in buffer.
 *
 * <p>Target: at least 5 M round trips/s with {@code dma=direct}. Baselines: the two-thread
 * {@link VirtqueuePingPongBench} adds the cross-core latency to this cost; {@link CopyBaseline}
 * bounds the copies of the bounce variant.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class VirtqueueRoundTripBench {
    private static final Integer TOKEN = 7;

    /** How the driver's buffers reach the device: {@code direct} or {@code bounce}. */
    @Param({"direct", "bounce"})
    public String dma;

    private QueueBed bed;
    private ScatterGather request;
    private MemorySegment scratch;
    private VirtqueueDriver.UsedHandler<Integer> handler;
    private long usedLength;

    /** Created by JMH. */
    public VirtqueueRoundTripBench() {
    }

    /** Builds the queue and the request. */
    @Setup(Level.Trial)
    public void setUp() {
        bed = new QueueBed("bounce".equals(dma));
        request = bed.request();
        scratch = Arena.ofAuto().allocate(64, 64);
        bed.buffer(0, 64).fill((byte) 0x5a);
        handler = (token, lengthBytes) -> usedLength += lengthBytes + token;
    }

    /** Frees the queue and the memory. */
    @TearDown(Level.Trial)
    public void tearDown() {
        bed.close();
    }

    /**
     * One request, driver to device and back.
     *
     * @param bh receives the notification decisions
     * @return a sum of the used lengths and tokens seen, so nothing is eliminated
     */
    @Benchmark
    public long roundTrip(Blackhole bh) {
        if (!bed.driver.add(request, TOKEN)) {
            throw new IllegalStateException("queue full: " + bed.driver);
        }
        bh.consume(bed.driver.kickPrepare());
        DescriptorChain chain = bed.device.pop();
        chain.readFrom(0, scratch);
        chain.writeTo(0, scratch);
        bed.device.pushUsed(chain, 64);
        bh.consume(bed.device.needsInterrupt());
        if (bed.driver.reap(handler, 1) != 1) {
            throw new IllegalStateException("nothing reaped: " + bed.driver);
        }
        return usedLength;
    }
}
