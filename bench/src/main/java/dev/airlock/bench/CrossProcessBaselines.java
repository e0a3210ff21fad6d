package dev.airlock.bench;

import dev.airlock.memory.SharedMemory;
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

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * Baselines between two JVMs, for the transport benchmarks: a 64-byte request/response over a Unix
 * domain socket (what a conventional out-of-process backend pays per request), and a cache-line
 * ping-pong through a memfd mapped by both processes (the floor for any shared-memory protocol).
 * The peer is {@link EchoPeer}, started in {@code @Setup}.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class CrossProcessBaselines {
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();

    /** A Unix socket to an echo process. */
    @State(Scope.Benchmark)
    public static class SocketPeer {
        private Path dir;
        private Process peer;
        private SocketChannel channel;
        private final ByteBuffer buffer = ByteBuffer.allocateDirect(EchoPeer.MESSAGE_BYTES);

        /**
         * Starts the peer and accepts its connection.
         *
         * @throws IOException if the socket fails
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            dir = Files.createTempDirectory("airlock-bench");
            Path path = dir.resolve("echo.sock");
            try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
                server.bind(UnixDomainSocketAddress.of(path));
                peer = EchoPeer.start("socket", path.toString());
                channel = server.accept();
            }
        }

        /**
         * Stops the peer.
         *
         * @throws Exception if it does not stop
         */
        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            channel.close();
            peer.waitFor(10, TimeUnit.SECONDS);
            Files.deleteIfExists(dir.resolve("echo.sock"));
            Files.deleteIfExists(dir);
        }
    }

    /** A memfd mapped by this process and by an echo process. */
    @State(Scope.Benchmark)
    public static class SharedLinePeer {
        private SharedMemory lines;
        private Process peer;
        private long sequence;

        /**
         * Creates the memfd and starts the peer on it.
         *
         * @throws IOException if the peer cannot start
         */
        @Setup(Level.Trial)
        public void setUp() throws IOException {
            lines = SharedMemory.create("bench-pingpong", 4096);
            peer = EchoPeer.start("pingpong", "/proc/" + ProcessHandle.current().pid() + "/fd/" + lines.fd());
        }

        /**
         * Stops the peer and unmaps the memfd.
         *
         * @throws Exception if it does not stop
         */
        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            LONG.setRelease(lines.segment(), EchoPeer.PING_OFFSET, -1L);
            peer.waitFor(10, TimeUnit.SECONDS);
            lines.close();
        }
    }

    /**
     * One 64-byte request and its 64-byte response through a Unix socket.
     *
     * @param s the connection
     * @return the first byte of the response
     * @throws IOException if the socket fails
     */
    @Benchmark
    public byte unixSocketRoundTrip(SocketPeer s) throws IOException {
        ByteBuffer buffer = s.buffer;
        buffer.clear();
        buffer.put(0, (byte) 1);
        while (buffer.hasRemaining()) {
            s.channel.write(buffer);
        }
        buffer.clear();
        while (buffer.hasRemaining()) {
            if (s.channel.read(buffer) < 0) {
                throw new IOException("echo peer closed the socket");
            }
        }
        return buffer.get(0);
    }

    /**
     * One round trip through two cache lines shared with another process.
     *
     * @param s the shared lines
     * @return the echoed sequence number
     */
    @Benchmark
    public long crossProcessPingPong(SharedLinePeer s) {
        MemorySegment lines = s.lines.segment();
        long next = ++s.sequence;
        // Publishes the ping; pairs with the peer's getAcquire.
        LONG.setRelease(lines, EchoPeer.PING_OFFSET, next);
        long pong;
        while ((pong = (long) LONG.getAcquire(lines, EchoPeer.PONG_OFFSET)) != next) {
            Thread.onSpinWait();
        }
        return pong;
    }
}
