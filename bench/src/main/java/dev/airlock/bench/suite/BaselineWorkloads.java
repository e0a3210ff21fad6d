package dev.airlock.bench.suite;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The workloads of the limits and of the Unix-socket alternative, run inside child processes
 * ({@link SuiteChild}): {@code MemorySegment.copy} bandwidth (one process), a cache-line ping-pong
 * through a file in {@code /dev/shm} mapped by two processes, and a Unix-domain socket between two
 * processes (64 B request/response, 64 KiB bulk). The measuring side prints the figures; the peer
 * serves until the harness ends it.
 */
final class BaselineWorkloads {
    /** Offset of the cache line the measuring side writes. */
    static final long PING_OFFSET = 0;
    /** Offset of the cache line the peer writes (two lines away, so the adjacent-line prefetcher does not pair them). */
    static final long PONG_OFFSET = 128;
    /** Size of the shared ping-pong file. */
    static final long LINES_BYTES = 4096;
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();
    private static final int MAX_SAMPLES = 1 << 22;

    private BaselineWorkloads() {
    }

    /**
     * {@code MemorySegment.copy} between two native segments, in five shapes.
     *
     * @param out             stdout
     * @param plan            the runs
     * @param llcBytes        the working set of the larger-than-LLC figure
     * @param bulkWorkingSet  the working set of the bulk-run baseline
     * @throws Exception if a run fails
     */
    static void copy(PrintStream out, RunPlan plan, long llcBytes, long bulkWorkingSet) throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            long max = Math.max(llcBytes, bulkWorkingSet);
            MemorySegment src = arena.allocate(max, 4096);
            MemorySegment dst = arena.allocate(max, 4096);
            src.fill((byte) 0x5a); // touch every page before timing
            dst.fill((byte) 0);
            plan.execute(out, copyBody("copy.4k", src, dst, 4096, 4096));
            plan.execute(out, copyBody("copy.64k", src, dst, 64 * 1024, 64 * 1024));
            plan.execute(out, copyBody("copy.1m", src, dst, 1 << 20, 1 << 20));
            plan.execute(out, copyBody("copy.llc", src, dst, 1 << 20, llcBytes));
            plan.execute(out, copyBody("copy.bulk-ws", src, dst, Catalog.BULK_BYTES, bulkWorkingSet));
        }
    }

    /** Copies {@code chunk} bytes at a time, walking through {@code workingSet} bytes of each segment. */
    private static RunPlan.Body copyBody(String id, MemorySegment src, MemorySegment dst, long chunk, long workingSet) {
        return (durationNs, report) -> {
            long bytes = 0;
            long offset = 0;
            long start = System.nanoTime();
            long now;
            do {
                for (int i = 0; i < 16; i++) {
                    MemorySegment.copy(src, offset, dst, offset, chunk);
                    bytes += chunk;
                    offset += chunk;
                    if (offset + chunk > workingSet) {
                        offset = 0;
                    }
                }
                now = System.nanoTime();
            } while (now - start < durationNs);
            report.value(id, bytes * 1e9 / (now - start));
        };
    }

    /**
     * The measuring side of the cache-line ping-pong: release-stores a sequence number in the ping
     * line and spins until the peer echoes it into the pong line.
     *
     * @param out   stdout
     * @param plan  the runs
     * @param lines the shared file (created by the harness)
     * @throws Exception if a run fails
     */
    static void pingPong(PrintStream out, RunPlan plan, Path lines) throws Exception {
        try (FileChannel channel = FileChannel.open(lines, StandardOpenOption.READ, StandardOpenOption.WRITE);
             Arena arena = Arena.ofConfined()) {
            MemorySegment m = channel.map(FileChannel.MapMode.READ_WRITE, 0, LINES_BYTES, arena);
            long[] samples = new long[MAX_SAMPLES];
            long[] sequence = {1};
            awaitPeer(m);
            plan.execute(out, (durationNs, report) -> {
                int n = 0;
                long start = System.nanoTime();
                long t0 = start;
                while (t0 - start < durationNs && n < samples.length) {
                    long next = ++sequence[0];
                    // Publishes the ping; pairs with the peer's getAcquire.
                    LONG.setRelease(m, PING_OFFSET, next);
                    while ((long) LONG.getAcquire(m, PONG_OFFSET) != next) {
                        Thread.onSpinWait();
                    }
                    long t1 = System.nanoTime();
                    samples[n++] = t1 - t0;
                    t0 = t1;
                }
                report.value("pingpong.p50", RunPlan.percentile(samples, n, 50));
                report.value("pingpong.p99", RunPlan.percentile(samples, n, 99));
            });
        }
    }

    /** Waits until the peer process is up and echoing (its JVM start must not count as a round trip). */
    private static void awaitPeer(MemorySegment m) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        // Publishes the first ping; pairs with the peer's getAcquire.
        LONG.setRelease(m, PING_OFFSET, 1L);
        while ((long) LONG.getAcquire(m, PONG_OFFSET) != 1L) {
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException("the ping-pong peer did not answer within 30 s");
            }
            Thread.sleep(1);
        }
    }

    /**
     * The peer of the ping-pong: echoes each new ping into the pong line, until killed.
     *
     * @param lines the shared file
     * @throws IOException if it cannot be mapped
     */
    static void pingPongPeer(Path lines) throws IOException {
        try (FileChannel channel = FileChannel.open(lines, StandardOpenOption.READ, StandardOpenOption.WRITE);
             Arena arena = Arena.ofConfined()) {
            MemorySegment m = channel.map(FileChannel.MapMode.READ_WRITE, 0, LINES_BYTES, arena);
            long seen = 0;
            while (true) {
                // Pairs with the measuring side's setRelease of the ping.
                long ping = (long) LONG.getAcquire(m, PING_OFFSET);
                if (ping != seen) {
                    seen = ping;
                    // Publishes the echo; pairs with the measuring side's getAcquire of the pong.
                    LONG.setRelease(m, PONG_OFFSET, ping);
                } else {
                    Thread.onSpinWait();
                }
            }
        }
    }

    /**
     * The measuring side of the Unix-socket request/response: listens, accepts the peer, then sends
     * 64 B and waits for the 64 B answer, over and over (blocking I/O, as a plain Java service would).
     *
     * @param out    stdout
     * @param plan   the runs
     * @param socket where to listen
     * @throws Exception if a run fails
     */
    static void socketRequestResponse(PrintStream out, RunPlan plan, Path socket) throws Exception {
        try (SocketChannel channel = accept(socket)) {
            ByteBuffer buffer = ByteBuffer.allocateDirect(Catalog.SMALL_BYTES);
            long[] samples = new long[MAX_SAMPLES];
            plan.execute(out, (durationNs, report) -> {
                int n = 0;
                long start = System.nanoTime();
                long t0 = start;
                while (t0 - start < durationNs && n < samples.length) {
                    buffer.clear();
                    buffer.putLong(0, t0);
                    writeFully(channel, buffer);
                    buffer.clear();
                    if (!readFully(channel, buffer)) {
                        throw new IOException("the echo peer closed the socket");
                    }
                    long t1 = System.nanoTime();
                    samples[n++] = t1 - t0;
                    t0 = t1;
                }
                report.value("socket.rr.rate", n * 1e9 / (t0 - start));
                report.value("socket.rr.p50", RunPlan.percentile(samples, n, 50));
                report.value("socket.rr.p99", RunPlan.percentile(samples, n, 99));
            });
        }
    }

    /**
     * The measuring side of the Unix-socket bulk figure: accepts the peer and counts the bytes it
     * receives while the peer writes 64 KiB at a time.
     *
     * @param out    stdout
     * @param plan   the runs
     * @param socket where to listen
     * @throws Exception if a run fails
     */
    static void socketBulk(PrintStream out, RunPlan plan, Path socket) throws Exception {
        try (SocketChannel channel = accept(socket)) {
            ByteBuffer buffer = ByteBuffer.allocateDirect(Catalog.BULK_BYTES);
            plan.execute(out, (durationNs, report) -> {
                long bytes = 0;
                long start = System.nanoTime();
                long now = start;
                while (now - start < durationNs) {
                    buffer.clear();
                    int n = channel.read(buffer);
                    if (n < 0) {
                        throw new IOException("the bulk peer closed the socket");
                    }
                    bytes += n;
                    now = System.nanoTime();
                }
                report.value("socket.bulk", bytes * 1e9 / (now - start));
            });
        }
    }

    /**
     * The socket peer: connects (retrying until the measuring side listens), then either echoes
     * 64 B messages or writes 64 KiB blocks, until the socket closes.
     *
     * @param socket the measuring side's socket
     * @param bulk   write blocks rather than echo
     * @throws IOException if the socket fails other than by closing
     * @throws InterruptedException if interrupted while waiting to connect
     */
    static void socketPeer(Path socket, boolean bulk) throws IOException, InterruptedException {
        try (SocketChannel channel = connect(socket)) {
            ByteBuffer buffer = ByteBuffer.allocateDirect(bulk ? Catalog.BULK_BYTES : Catalog.SMALL_BYTES);
            try {
                while (true) {
                    buffer.clear();
                    if (!bulk && !readFully(channel, buffer)) {
                        return;
                    }
                    buffer.flip();
                    if (bulk) {
                        buffer.limit(buffer.capacity());
                    }
                    writeFully(channel, buffer);
                }
            } catch (IOException closed) {
                // the measuring side is done and closed its end
            }
        }
    }

    private static SocketChannel accept(Path socket) throws IOException {
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(socket));
            return server.accept();
        }
    }

    private static SocketChannel connect(Path socket) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (true) {
            try {
                return SocketChannel.open(UnixDomainSocketAddress.of(socket));
            } catch (IOException e) {
                if (System.nanoTime() - deadline > 0) {
                    throw e;
                }
                Thread.sleep(10);
            }
        }
    }

    private static void writeFully(SocketChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }

    /** Reads until the buffer is full; false if the peer closed first. */
    private static boolean readFully(SocketChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            if (channel.read(buffer) < 0) {
                return false;
            }
        }
        return true;
    }
}
