package dev.airlock.devices.console;

import dev.airlock.devices.DeviceWorld;
import dev.airlock.devices.rng.DetachingTransport;
import dev.airlock.transport.TransportKind;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.VirtioFeatures;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.foreign.MemorySegment;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Console} across a backend that goes away and comes back ({@link DetachingTransport}). */
class ConsoleReattachTest {
    private final DeviceWorld world = new DeviceWorld();
    private final List<AutoCloseable> closeables = new ArrayList<>();

    @TempDir
    Path dir;

    @AfterEach
    void close() throws Exception {
        for (AutoCloseable c : closeables.reversed()) {
            c.close();
        }
        world.close();
    }

    /** A driver over a detachable transport to {@code device}. */
    private record Setup(DetachingTransport transport, VirtioFrontend frontend, Console console) { }

    private Setup open(TransportKind kind, ConsoleDevice device) {
        closeables.add(device);
        DeviceWorld.Guest guest = world.guest("guest1");
        DetachingTransport transport = new DetachingTransport(world.attach(kind, guest, 0, device).transport());
        VirtioFrontend frontend = new VirtioFrontend(transport, guest.vm().addressSpace());
        closeables.add(frontend);
        MemorySegment ram = guest.vm().addressSpace().translate(0, DeviceWorld.GUEST_RAM);
        Console console = new Console(frontend, ram, 0);
        closeables.add(console);
        return new Setup(transport, frontend, console);
    }

    private static <T> CompletableFuture<T> async(String name, IoCall<T> call) {
        CompletableFuture<T> done = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name(name).start(() -> {
            try {
                done.complete(call.run());
            } catch (Throwable t) {
                done.completeExceptionally(t);
            }
        });
        return done;
    }

    private interface IoCall<T> {
        T run() throws IOException;
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldWaitWhileDetachedAndCarryLinesBothWaysAfterAReattach(TransportKind kind) throws Exception {
        Path socket = dir.resolve("console.sock");
        Setup s = open(kind, new ConsoleDevice(ConsoleEndpoint.unixSocket(socket)));
        SocketChannel client = connect(socket);
        s.console().output().write("before\n".getBytes(StandardCharsets.UTF_8));
        s.console().output().flush();
        assertEquals("before", readLine(client));
        BufferedReader guestReader = new BufferedReader(new InputStreamReader(s.console().input(), StandardCharsets.UTF_8));
        CompletableFuture<String> input = async("test console reader", guestReader::readLine);

        s.transport().detach();
        CompletableFuture<Void> output = async("test console writer", () -> {
            s.console().output().write("during\n".getBytes(StandardCharsets.UTF_8));
            s.console().output().flush();
            return null;
        });
        Thread.sleep(200);
        assertFalse(output.isDone(), "a write waits while the backend is away");
        assertFalse(input.isDone());
        s.transport().reattach(-1L);

        output.get(5, TimeUnit.SECONDS);
        assertEquals("during", readLine(client));
        client.write(ByteBuffer.wrap("after\n".getBytes(StandardCharsets.UTF_8)));
        assertEquals("after", input.get(5, TimeUnit.SECONDS));
        assertEquals(1, s.console().metrics().reattaches());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldDeliverEveryBufferAtLeastOnceInOrderWhenTheBackendGoesAwayWithOutputInFlight(TransportKind kind) throws Exception {
        Path socket = dir.resolve("console.sock");
        Setup s = open(kind, new ConsoleDevice(ConsoleEndpoint.unixSocket(socket)));
        byte[] data = new byte[512 * 1024];
        new SplittableRandom(11).nextBytes(data);
        // No client yet: the port's buffer fills and the device holds the transmit buffers.
        CompletableFuture<Void> writer = async("test console writer", () -> {
            s.console().output().write(data);
            s.console().output().flush();
            return null;
        });
        Thread.sleep(300);
        assertFalse(writer.isDone());
        s.transport().detach();
        Thread.sleep(100);
        s.transport().reattach(-1L);
        SocketChannel client = connect(socket);

        ByteArrayOutputStream received = new ByteArrayOutputStream();
        ByteBuffer buffer = ByteBuffer.allocate(65536);
        byte[] tail = Arrays.copyOfRange(data, data.length - Console.BUFFER_BYTES, data.length);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!endsWith(received.toByteArray(), tail)) {
            assertTrue(System.nanoTime() < deadline, "received " + received.size() + " of " + data.length + " bytes");
            client.configureBlocking(false);
            buffer.clear();
            if (client.read(buffer) > 0) {
                received.write(buffer.array(), 0, buffer.position());
            } else {
                Thread.sleep(2);
            }
        }
        writer.get(5, TimeUnit.SECONDS);
        byte[] got = received.toByteArray();
        // Each buffer written arrives, in order; what lies between them can only be buffers given twice.
        int at = 0;
        for (int off = 0; off < data.length; off += Console.BUFFER_BYTES) {
            byte[] chunk = Arrays.copyOfRange(data, off, off + Console.BUFFER_BYTES);
            int found = indexOf(got, chunk, at);
            assertTrue(found >= 0, "buffer at " + off + " missing");
            assertTrue(found - at <= Console.TX_BUFFERS * Console.BUFFER_BYTES, "more than the buffers in flight repeated");
            at = found + chunk.length;
        }
        assertEquals(got.length, at);
        assertTrue(got.length - data.length <= Console.TX_BUFFERS * Console.BUFFER_BYTES, got.length + " bytes");
        assertTrue(s.console().metrics().retransmitRequests() > 0, "buffers in flight were given again");
        assertEquals(1, s.console().metrics().reattaches());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void rejectsADeviceThatComesBackWithOtherFeatures(TransportKind kind) throws Exception {
        Setup s = open(kind, new ConsoleDevice(ConsoleEndpoint.file(dir.resolve("out.log")), 80, 24));
        s.console().output().write('a');
        s.console().output().flush();
        s.transport().detach();
        s.transport().reattach(~VirtioFeatures.of(ConsoleDevice.VIRTIO_CONSOLE_F_SIZE));
        IOException e = assertThrows(IOException.class, () -> {
            s.console().output().write('b');
            s.console().output().flush();
        });
        assertTrue(e.getMessage().contains("came back with features"), e.getMessage());
        IOException read = assertThrows(IOException.class, () -> s.console().input().read());
        assertEquals(e.getMessage(), read.getMessage(), "both streams failed for good");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldFailWaitingStreamsWhenTheTransportBreaksForGood(TransportKind kind) throws Exception {
        Setup s = open(kind, new ConsoleDevice(ConsoleEndpoint.file(dir.resolve("out.log"))));
        s.transport().detach();
        CompletableFuture<Integer> reader = async("test console reader", () -> s.console().input().read());
        CompletableFuture<Void> writer = async("test console writer", () -> {
            s.console().output().write('x');
            return null;
        });
        Thread.sleep(100);
        assertFalse(reader.isDone());
        assertFalse(writer.isDone());
        s.transport().breakForGood();
        for (CompletableFuture<?> f : List.of(reader, writer)) {
            ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(5, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof IOException && e.getCause().getMessage().contains("transport broken"),
                    String.valueOf(e.getCause()));
        }
    }

    private static boolean endsWith(byte[] b, byte[] tail) {
        return b.length >= tail.length && Arrays.equals(b, b.length - tail.length, b.length, tail, 0, tail.length);
    }

    private static int indexOf(byte[] haystack, byte[] needle, int from) {
        outer:
        for (int i = from; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    private static SocketChannel connect(Path socket) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (true) {
            try {
                return SocketChannel.open(UnixDomainSocketAddress.of(socket));
            } catch (IOException e) {
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(10);
            }
        }
    }

    private static String readLine(SocketChannel client) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        ByteBuffer one = ByteBuffer.allocate(1);
        while (true) {
            one.clear();
            if (client.read(one) < 0) {
                throw new IOException("end of stream after " + line);
            }
            if (one.get(0) == '\n') {
                return line.toString(StandardCharsets.UTF_8);
            }
            line.write(one.get(0));
        }
    }
}
