package dev.airlock.bench;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * The other process of the cross-process baselines. {@code socket PATH}: connects to a Unix socket
 * and echoes every 64-byte message. {@code pingpong FILE}: maps a shared file (a memfd reached
 * through {@code /proc/PID/fd/N}) and echoes the ping cache line into the pong cache line until
 * the ping is -1.
 */
public final class EchoPeer {
    static final int MESSAGE_BYTES = 64;
    static final long PING_OFFSET = 0;
    static final long PONG_OFFSET = 128;
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();

    private EchoPeer() {
    }

    /**
     * Entry point of the peer process.
     *
     * @param args {@code socket PATH} or {@code pingpong FILE}
     * @throws IOException if the socket or file fails
     */
    public static void main(String[] args) throws IOException {
        switch (args[0]) {
            case "socket" -> echoSocket(Path.of(args[1]));
            case "pingpong" -> echoCacheLine(Path.of(args[1]));
            default -> throw new IllegalArgumentException("unknown mode " + args[0]);
        }
    }

    private static void echoSocket(Path path) throws IOException {
        try (SocketChannel channel = SocketChannel.open(UnixDomainSocketAddress.of(path))) {
            ByteBuffer buffer = ByteBuffer.allocateDirect(MESSAGE_BYTES);
            while (true) {
                buffer.clear();
                while (buffer.hasRemaining()) {
                    if (channel.read(buffer) < 0) {
                        return;
                    }
                }
                buffer.flip();
                while (buffer.hasRemaining()) {
                    channel.write(buffer);
                }
            }
        }
    }

    private static void echoCacheLine(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
             Arena arena = Arena.ofShared()) {
            MemorySegment lines = channel.map(FileChannel.MapMode.READ_WRITE, 0, 4096, arena);
            long seen = 0;
            while (true) {
                // Pairs with the benchmark process's setRelease of PING.
                long ping = (long) LONG.getAcquire(lines, PING_OFFSET);
                if (ping == -1) {
                    return;
                }
                if (ping != seen) {
                    seen = ping;
                    // Publishes the echo; pairs with the benchmark process's getAcquire of PONG.
                    LONG.setRelease(lines, PONG_OFFSET, ping);
                } else {
                    Thread.onSpinWait();
                }
            }
        }
    }

    /**
     * Starts this class's {@code main} in a new JVM with the same class path.
     *
     * @param args the peer's arguments
     * @return the process
     * @throws IOException if it cannot be started
     */
    static Process start(String... args) throws IOException {
        String java = ProcessHandle.current().info().command().orElse("java");
        List<String> command = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-Xmx64m",
                "-cp", System.getProperty("java.class.path"), EchoPeer.class.getName()));
        command.addAll(List.of(args));
        return new ProcessBuilder(command).inheritIO().start();
    }
}
