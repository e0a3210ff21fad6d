package dev.airlock.vhostuser;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A back-end serving {@link EchoModel}s on a temp socket, and the checks the protocol tests share. */
abstract class VhostUserTestSupport {
    Path socketPath;
    VhostUserBackend backend;
    final List<EchoModel> models = new CopyOnWriteArrayList<>();

    void startBackend(Path dir) {
        socketPath = dir.resolve("vu.sock");
        backend = VhostUserBackend.serve(socketPath, () -> {
            EchoModel m = new EchoModel();
            models.add(m);
            return m;
        });
    }

    void stopBackend() {
        if (backend != null) {
            backend.close();
        }
    }

    /** The back-end closes the connection, names {@code field} in its error, and serves the next connection. */
    void assertClosedFor(TestFrontend frontend, String field) {
        // The back-end records the error before it closes the socket, and serves one connection at a
        // time: once this connection sees end of stream, lastError is this connection's.
        assertTimeoutPreemptively(Duration.ofSeconds(20), () ->
                assertNull(frontend.receive(), "the back-end should have closed the connection"), VhostUserTestSupport::threadDump);
        String error = backend.lastError();
        assertNotNull(error);
        assertTrue(error.startsWith(field), () -> "expected a complaint about " + field + ", got: " + error);
        assertNextConnectionServed();
    }

    void assertNextConnectionServed() {
        assertTimeoutPreemptively(Duration.ofSeconds(10), () -> {
            try (TestFrontend next = new TestFrontend(socketPath)) {
                TestFrontend.Reply reply = next.call(VhostUserRequest.GET_FEATURES, new byte[0]);
                assertNotNull(reply, "the next connection was not served");
                assertEquals(VhostUserRequest.GET_FEATURES, reply.request());
                assertEquals(1 | 4, reply.flags());
            }
        });
    }

    static String threadDump() {
        StringBuilder b = new StringBuilder("connection did not end; threads:\n");
        Thread.getAllStackTraces().forEach((t, stack) -> {
            b.append(t.getName()).append('\n');
            for (StackTraceElement e : stack) {
                b.append("    ").append(e).append('\n');
            }
        });
        return b.toString();
    }

    static long openFds() throws IOException {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    static long mappingsOf(String name) throws IOException {
        try (Stream<String> s = Files.lines(Path.of("/proc/self/maps"))) {
            return s.filter(l -> l.contains(name)).count();
        }
    }
}
