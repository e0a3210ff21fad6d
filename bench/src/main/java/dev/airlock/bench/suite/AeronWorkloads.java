package dev.airlock.bench.suite;

import io.aeron.Aeron;
import io.aeron.FragmentAssembler;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import io.aeron.logbuffer.FragmentHandler;
import org.agrona.concurrent.SleepingMillisIdleStrategy;
import org.agrona.concurrent.UnsafeBuffer;

import java.io.PrintStream;
import java.nio.ByteBuffer;

/**
 * The Aeron IPC baselines ({@code aeron:ipc}, Aeron's defaults otherwise), between two processes
 * that share the media driver's directory under {@code /dev/shm}. The peer process embeds the
 * media driver (shared threading mode, sleeping 1 ms when idle, so that its conductor does not
 * compete with the two spinning threads on a 2-core machine) and either answers pings or publishes
 * as fast as it can; the measuring process is a plain client. 64 KiB messages are reassembled with
 * a {@link FragmentAssembler}, as a user receiving whole messages would.
 */
final class AeronWorkloads {
    /** The channel of every stream. */
    static final String CHANNEL = "aeron:ipc";
    private static final int PING_STREAM = 1001;
    private static final int PONG_STREAM = 1002;
    private static final int DATA_STREAM = 1003;
    private static final int FRAGMENT_LIMIT = 256;
    private static final int MAX_SAMPLES = 1 << 22;

    private AeronWorkloads() {
    }

    /**
     * The peer: launches the media driver in {@code dir}, then either answers pings
     * ({@code messageBytes == 0}) or publishes {@code messageBytes}-byte messages, until killed.
     *
     * @param dir          the Aeron directory (under /dev/shm)
     * @param messageBytes 0 for the pong side, else the size of the published messages
     */
    static void peer(String dir, int messageBytes) {
        MediaDriver.Context driverContext = new MediaDriver.Context().aeronDirectoryName(dir)
                .threadingMode(ThreadingMode.SHARED).sharedIdleStrategy(new SleepingMillisIdleStrategy(1))
                .dirDeleteOnStart(true).dirDeleteOnShutdown(true);
        try (MediaDriver driver = MediaDriver.launch(driverContext);
             Aeron aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(driver.aeronDirectoryName()))) {
            if (messageBytes == 0) {
                pong(aeron);
            } else {
                publish(aeron, messageBytes);
            }
        }
    }

    private static void pong(Aeron aeron) {
        try (Subscription pings = aeron.addSubscription(CHANNEL, PING_STREAM);
             Publication pongs = aeron.addExclusivePublication(CHANNEL, PONG_STREAM)) {
            FragmentHandler echo = (buffer, offset, length, header) -> {
                while (pongs.offer(buffer, offset, length) < 0) {
                    Thread.onSpinWait();
                }
            };
            while (true) {
                if (pings.poll(echo, 1) == 0) {
                    Thread.onSpinWait();
                }
            }
        }
    }

    private static void publish(Aeron aeron, int messageBytes) {
        try (Publication data = aeron.addExclusivePublication(CHANNEL, DATA_STREAM)) {
            UnsafeBuffer message = new UnsafeBuffer(ByteBuffer.allocateDirect(messageBytes));
            for (int i = 0; i < messageBytes; i++) {
                message.putByte(i, (byte) i);
            }
            long sequence = 0;
            while (true) {
                message.putLong(0, sequence);
                if (data.offer(message, 0, messageBytes) > 0) {
                    sequence++;
                } else {
                    Thread.onSpinWait(); // back pressure, or no subscriber yet
                }
            }
        }
    }

    /**
     * The measuring side of the ping-pong: sends a 32-byte message and spins until the answer arrives.
     *
     * @param out  stdout
     * @param plan the runs
     * @param dir  the peer's Aeron directory
     * @throws Exception if a run fails
     */
    static void ping(PrintStream out, RunPlan plan, String dir) throws Exception {
        try (Aeron aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(dir));
             Publication pings = aeron.addExclusivePublication(CHANNEL, PING_STREAM);
             Subscription pongs = aeron.addSubscription(CHANNEL, PONG_STREAM)) {
            awaitConnected(pings, pongs);
            UnsafeBuffer message = new UnsafeBuffer(ByteBuffer.allocateDirect(Catalog.AERON_SMALL_BYTES));
            long[] samples = new long[MAX_SAMPLES];
            long[] received = {0};
            FragmentHandler onPong = (buffer, offset, length, header) -> received[0] = buffer.getLong(offset);
            plan.execute(out, (durationNs, report) -> {
                int n = 0;
                long start = System.nanoTime();
                long t0 = start;
                while (t0 - start < durationNs && n < samples.length) {
                    message.putLong(0, t0);
                    while (pings.offer(message, 0, Catalog.AERON_SMALL_BYTES) < 0) {
                        Thread.onSpinWait();
                    }
                    while (received[0] != t0) {
                        if (pongs.poll(onPong, 1) == 0) {
                            Thread.onSpinWait();
                        }
                    }
                    long t1 = System.nanoTime();
                    samples[n++] = t1 - t0;
                    t0 = t1;
                }
                report.value("aeron.ping.rate", n * 1e9 / (t0 - start));
                report.value("aeron.ping.p50", RunPlan.percentile(samples, n, 50));
                report.value("aeron.ping.p99", RunPlan.percentile(samples, n, 99));
            });
        }
    }

    /**
     * The measuring side of a throughput figure: subscribes and counts the messages (and bytes)
     * the peer publishes.
     *
     * @param out          stdout
     * @param plan         the runs
     * @param dir          the peer's Aeron directory
     * @param messageBytes the peer's message size: 32 B reports a message rate, larger sizes bytes per second
     * @throws Exception if a run fails
     */
    static void subscribe(PrintStream out, RunPlan plan, String dir, int messageBytes) throws Exception {
        try (Aeron aeron = Aeron.connect(new Aeron.Context().aeronDirectoryName(dir));
             Subscription data = aeron.addSubscription(CHANNEL, DATA_STREAM)) {
            awaitConnected(null, data);
            long[] counts = {0, 0}; // messages, bytes
            FragmentHandler count = (buffer, offset, length, header) -> {
                counts[0]++;
                counts[1] += length;
            };
            FragmentHandler handler = messageBytes > Catalog.AERON_SMALL_BYTES ? new FragmentAssembler(count) : count;
            boolean small = messageBytes <= Catalog.AERON_SMALL_BYTES;
            plan.execute(out, (durationNs, report) -> {
                long messages0 = counts[0];
                long bytes0 = counts[1];
                long start = System.nanoTime();
                long now = start;
                while (now - start < durationNs) {
                    if (data.poll(handler, FRAGMENT_LIMIT) == 0) {
                        Thread.onSpinWait();
                    }
                    now = System.nanoTime();
                }
                double seconds = (now - start) / 1e9;
                if (small) {
                    report.value("aeron.rate32", (counts[0] - messages0) / seconds);
                } else {
                    report.value("aeron.bulk64k", (counts[1] - bytes0) / seconds);
                }
            });
        }
    }

    private static void awaitConnected(Publication publication, Subscription subscription) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while ((publication != null && !publication.isConnected()) || !subscription.isConnected()) {
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException("the Aeron peer did not connect within 30 s");
            }
            Thread.sleep(1);
        }
    }
}
