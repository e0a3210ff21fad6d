package dev.airlock.vhostuser;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.NativeCallException;
import dev.airlock.memory.sys.UnixSocket;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The back-end's vhost-user request parser and dispatcher ({@link VhostUserChannel#read} and
 * {@link VhostUserConnection}) against any stream of requests a hostile front-end can send, with
 * descriptors attached (eventfds, or a memfd that can be mapped as guest memory or an inflight
 * buffer). A front-end thread sends the requests and then half-closes the socket; the test thread
 * serves the connection as the back-end does, with a fresh {@link EchoModel}.
 *
 * <p>Invariants: {@link VhostUserConnection#serve} returns at end of stream or throws
 * {@link VhostUserProtocolException}, never anything else (also when the front-end hangs up in the
 * middle of a message); every reply is well-formed (version 1
 * with REPLY set, a request code that was sent, a payload of at most 4 KiB); after
 * {@link VhostUserConnection#close} every descriptor the back-end received or made is closed.
 *
 * <pre>
 *  input: a sequence of messages, each
 *   [0]      descriptors: bits 0-1 how many (0 to 3); bit 2 the first is a 64 KiB memfd (else eventfds);
 *            bit 7 the stream ends half-way through this message's payload
 *   [1..12]  the header as sent: request, flags, size (u32 each, little-endian)
 *   [13..]   the payload: size bytes if size &lt;= 4096 (zero-padded), else none
 * </pre>
 */
class VhostUserMessageFuzzTest {
    private static final int HEADER_BYTES = 1 + VhostUserHeaderLayout.HEADER_LENGTH;
    private static final long MEMFD_BYTES = 64 * 1024;
    private static final long JOIN_TIMEOUT_MS = 10_000;
    private static final int SHUT_WR = 1;
    private static final MethodHandle SHUTDOWN = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().findOrThrow("shutdown"),
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));

    /** One message as the front-end sends it. */
    private record Outgoing(byte[] bytes, int fdCount, boolean memfd, boolean truncated) {
    }

    @FuzzTest(maxDuration = "60s")
    void connectionServesOrRefusesEveryStream(byte[] input) throws Exception {
        List<Outgoing> messages = parse(input);
        Set<Integer> requestsSent = new HashSet<>();
        for (Outgoing m : messages) {
            requestsSent.add(ByteBuffer.wrap(m.bytes()).order(ByteOrder.LITTLE_ENDIAN).getInt(0));
        }
        long fdsBefore = openFds();
        UnixSocket[] pair = UnixSocket.pair();
        AtomicReference<Throwable> frontendFailure = new AtomicReference<>();
        ByteArrayOutputStream replies = new ByteArrayOutputStream();
        // Replies are read while requests are sent, so neither side can block the other on a full socket.
        Thread sender = Thread.ofPlatform().name("fuzz-frontend-send").start(() -> {
            try {
                send(pair[0], messages);
            } catch (Throwable t) {
                frontendFailure.set(t);
            }
        });
        Thread reader = Thread.ofPlatform().name("fuzz-frontend-read").start(() -> {
            try {
                read(pair[0], replies);
            } catch (Throwable t) {
                frontendFailure.set(t);
            }
        });
        VhostUserConnection connection = new VhostUserConnection("fuzz", pair[1], new EchoModel());
        try {
            connection.serve();
        } catch (VhostUserProtocolException e) {
            // a typed refusal ends the connection, as VhostUserBackend does
        } finally {
            connection.close();
        }
        sender.join(JOIN_TIMEOUT_MS);
        reader.join(JOIN_TIMEOUT_MS);
        assertFalse(sender.isAlive() || reader.isAlive(), "the front-end did not see the connection end");
        pair[0].close();
        if (frontendFailure.get() != null) {
            throw new AssertionError("front-end side failed", frontendFailure.get());
        }
        checkReplies(replies.toByteArray(), requestsSent);
        assertEquals(fdsBefore, openFds(), "descriptors leaked by the back-end");
    }

    private static List<Outgoing> parse(byte[] input) {
        List<Outgoing> out = new ArrayList<>();
        int at = 0;
        while (at < input.length) {
            byte[] header = Arrays.copyOfRange(input, at, at + HEADER_BYTES);
            at += HEADER_BYTES;
            int spec = header[0] & 0xff;
            int size = ByteBuffer.wrap(header, 9, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
            int payload = Integer.compareUnsigned(size, VhostUserHeaderLayout.MAX_PAYLOAD_LENGTH) <= 0 ? size : 0;
            boolean truncated = (spec & 0x80) != 0;
            int sent = truncated ? payload / 2 : payload;
            byte[] bytes = new byte[VhostUserHeaderLayout.HEADER_LENGTH + sent];
            System.arraycopy(header, 1, bytes, 0, VhostUserHeaderLayout.HEADER_LENGTH);
            int available = Math.max(0, Math.min(sent, input.length - at));
            System.arraycopy(input, Math.min(at, input.length), bytes, VhostUserHeaderLayout.HEADER_LENGTH, available);
            at += payload;
            out.add(new Outgoing(bytes, spec & 0x3, (spec & 0x4) != 0, truncated));
            if (truncated) {
                break;
            }
        }
        return out;
    }

    /** Sends every message with its descriptors, then half-closes: the back-end reads end of stream after the last. */
    private static void send(UnixSocket socket, List<Outgoing> messages) throws Throwable {
        try {
            for (Outgoing m : messages) {
                int[] fds = new int[m.fdCount()];
                for (int i = 0; i < fds.length; i++) {
                    fds[i] = i == 0 && m.memfd() ? Linux.memfdCreate("fuzz-guest", MEMFD_BYTES, Linux.MFD_CLOEXEC)
                            : Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
                }
                try {
                    socket.send(m.bytes(), fds);
                } finally {
                    for (int fd : fds) {
                        Linux.close(fd);
                    }
                }
            }
        } catch (NativeCallException e) {
            // The back-end refused an earlier message and closed the connection: the rest is unsent.
        }
        // Fails only if the back-end already closed; then there is nothing to half-close.
        int ignored = (int) SHUTDOWN.invokeExact(socket.fd(), SHUT_WR);
    }

    /** Reads replies until end of stream, closing any descriptors they carry. */
    private static void read(UnixSocket socket, ByteArrayOutputStream replies) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(8192);
            while (true) {
                UnixSocket.Received r;
                try {
                    r = socket.receive(buffer);
                } catch (NativeCallException e) {
                    return; // connection reset by the back-end's close
                }
                for (int fd : r.fds()) {
                    Linux.close(fd);
                }
                if (r.endOfStream()) {
                    return;
                }
                replies.writeBytes(buffer.asSlice(0, r.byteCount()).toArray(ValueLayout.JAVA_BYTE));
            }
        }
    }

    private static void checkReplies(byte[] stream, Set<Integer> requestsSent) {
        ByteBuffer in = ByteBuffer.wrap(stream).order(ByteOrder.LITTLE_ENDIAN);
        while (in.remaining() >= VhostUserHeaderLayout.HEADER_LENGTH) {
            int request = in.getInt();
            int flags = in.getInt();
            int size = in.getInt();
            assertTrue(requestsSent.contains(request), "reply to request " + request + ", which was never sent");
            assertEquals(VhostUserHeaderLayout.VERSION | VhostUserHeaderLayout.FLAG_REPLY, flags, "reply flags");
            assertTrue(size >= 0 && size <= VhostUserHeaderLayout.MAX_PAYLOAD_LENGTH, "reply payload of " + size + " bytes");
            if (in.remaining() < size) {
                fail("reply to " + VhostUserRequest.name(request) + " cut short: " + in.remaining() + " of " + size + " bytes");
            }
            in.position(in.position() + size);
        }
        assertEquals(0, in.remaining(), "a partial reply header at the end of the stream");
    }

    private static long openFds() throws IOException {
        try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }
}
