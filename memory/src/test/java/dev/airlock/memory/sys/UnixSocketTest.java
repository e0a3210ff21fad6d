package dev.airlock.memory.sys;

import dev.airlock.memory.SharedMemory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class UnixSocketTest {
    @Test
    void shouldPassAMemfdThatTheReceiverCanMap() {
        UnixSocket[] pair = UnixSocket.pair();
        try (UnixSocket a = pair[0]; UnixSocket b = pair[1];
             SharedMemory region = SharedMemory.create("passed-region", 4096);
             Arena arena = Arena.ofConfined()) {
            region.segment().set(ValueLayout.JAVA_LONG, 64, 0x0123456789abcdefL);
            a.send("region".getBytes(StandardCharsets.UTF_8), region.fd());

            MemorySegment buffer = arena.allocate(64);
            UnixSocket.Received received = b.receive(buffer);
            assertEquals(6, received.byteCount());
            assertEquals(1, received.fds().length);
            assertTrue(received.fds()[0] != region.fd(), "the receiver gets its own descriptor number");
            try (SharedMemory mapped = SharedMemory.map("received", received.fds()[0], 4096, true)) {
                assertEquals(0x0123456789abcdefL, mapped.segment().get(ValueLayout.JAVA_LONG, 64));
                mapped.segment().set(ValueLayout.JAVA_INT, 0, 99);
                assertEquals(99, region.segment().get(ValueLayout.JAVA_INT, 0));
            }
        }
    }

    @Test
    void shouldTellThePeersCredentials() {
        UnixSocket[] pair = UnixSocket.pair();
        try (UnixSocket a = pair[0]; UnixSocket b = pair[1]) {
            UnixSocket.PeerCredentials credentials = a.peerCredentials();
            assertEquals(Linux.getpid(), credentials.pid());
            assertEquals(ProcessHandle.current().pid(), credentials.pid());
        }
    }

    @Test
    void shouldConnectThroughAPathAndReportEndOfStream(@TempDir Path dir) throws Exception {
        Path path = dir.resolve("s.sock");
        try (UnixSocket server = UnixSocket.listen(path, 4)) {
            CompletableFuture<UnixSocket> accepted = CompletableFuture.supplyAsync(server::accept);
            try (UnixSocket client = UnixSocket.connect(path); UnixSocket conn = accepted.get(5, TimeUnit.SECONDS);
                 Arena arena = Arena.ofConfined()) {
                byte[] payload = new byte[100_000];
                for (int i = 0; i < payload.length; i++) {
                    payload[i] = (byte) (i * 31);
                }
                CompletableFuture<Void> sending = CompletableFuture.runAsync(() -> client.send(payload));
                MemorySegment buffer = arena.allocate(payload.length);
                assertEquals(0, conn.receiveFully(buffer).length);
                sending.get(5, TimeUnit.SECONDS);
                assertArrayEquals(payload, buffer.toArray(ValueLayout.JAVA_BYTE));
                client.shutdown();
                assertNull(conn.receiveFully(arena.allocate(8)), "peer closed before the first byte");
            }
        }
    }

    @Test
    void shouldWakeABlockedAcceptOnShutdown(@TempDir Path dir) throws Exception {
        try (UnixSocket server = UnixSocket.listen(dir.resolve("w.sock"), 1)) {
            CompletableFuture<UnixSocket> accepted = CompletableFuture.supplyAsync(server::accept);
            Thread.sleep(100);
            server.shutdown();
            Exception e = assertThrows(Exception.class, () -> accepted.get(5, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof NativeCallException, e.toString());
        }
    }

    @Test
    void rejectsAConnectionToAMissingSocket(@TempDir Path dir) {
        NativeCallException e = assertThrows(NativeCallException.class, () -> UnixSocket.connect(dir.resolve("none.sock")));
        assertEquals(Errno.ENOENT, e.errno());
        assertTrue(e.getMessage().startsWith("connect("), e.getMessage());
    }

    @Test
    void rejectsAPathLongerThanSunPath() {
        assertThrows(IllegalArgumentException.class, () -> UnixSocket.connect(Path.of("/tmp/" + "x".repeat(120))));
    }
}
