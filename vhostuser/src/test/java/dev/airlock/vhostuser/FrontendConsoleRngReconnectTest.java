package dev.airlock.vhostuser;

import dev.airlock.devices.console.Console;
import dev.airlock.devices.console.ConsoleConfigLayout;
import dev.airlock.devices.console.ConsoleDevice;
import dev.airlock.devices.console.ConsoleEndpoint;
import dev.airlock.devices.rng.EntropySource;
import dev.airlock.devices.rng.RngDevice;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;
import dev.airlock.memory.SharedMemory;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.transport.VirtioFrontend;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Airlock's console and entropy drivers over {@link VhostUserDriverTransport} while Airlock's own
 * backend is closed and served again on the same socket: the same {@link Console} and
 * {@link EntropySource} go on working once the transport has reconnected, with no help from the
 * application; a backend that stays away fails them with an {@link IOException}.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class FrontendConsoleRngReconnectTest {
    private static final long RAM_GPA = 0;
    private static final long RAM_BYTES = 1L << 20;
    private static final long SHARED_GPA = 0x4000_0000L;
    private static final long SHARED_BYTES = 4L << 20;
    private static final Duration TIMEOUT = Duration.ofSeconds(5);

    @TempDir
    Path dir;

    private long threadsBefore;

    @BeforeEach
    void countThreads() {
        threadsBefore = airlockThreads();
    }

    @AfterEach
    void checkNoThreadLeft() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (airlockThreads() > threadsBefore && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(threadsBefore, airlockThreads(), () -> "threads left: " + airlockThreadNames());
    }

    /** The backend's, the transport's and the device models' threads. */
    private static long airlockThreads() {
        return airlockThreadNames().size();
    }

    private static List<String> airlockThreadNames() {
        return Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive).map(Thread::getName)
                .filter(n -> n.startsWith("airlock-vhost") || n.startsWith("console ") || n.startsWith("rng "))
                .toList();
    }

    /** A VM of one device over vhost-user: private RAM for the driver's buffers, one shared region for the rings and bounce pool. */
    private static final class Vm implements AutoCloseable {
        final PrivateMemory ram = new PrivateMemory("ram", RAM_BYTES);
        final SharedMemory shared = SharedMemory.create("vu-shared", SHARED_BYTES);
        final GuestAddressSpace space = new GuestAddressSpace("vu-frontend");
        final VhostUserDriverTransport transport;
        final VirtioFrontend frontend;

        Vm(Path socket, int deviceId, int configLengthBytes, Duration reconnectFor) {
            space.add(ram.region(RAM_GPA));
            space.add(shared.region(SHARED_GPA));
            transport = VhostUserDriverTransport.connect(socket, deviceId, configLengthBytes, shared, SHARED_GPA, TIMEOUT,
                    reconnectFor);
            frontend = new VirtioFrontend(transport, space);
        }

        @Override
        public void close() {
            frontend.close();
            shared.close();
            ram.close();
        }
    }

    private static EntropySource entropy(Vm vm) {
        return new EntropySource(vm.frontend, vm.ram.segment().asSlice(0, EntropySource.RAM_BYTES), RAM_GPA);
    }

    /** Closes the backend, waits until the transport saw it go, and serves a new one on the same socket. */
    private static VhostUserBackend restart(VhostUserBackend backend, Vm vm, Path socket,
                                            Supplier<? extends VirtioDeviceModel> models) throws InterruptedException {
        backend.close();
        awaitTrue(vm.transport::isDetached, "the transport detached");
        Thread.sleep(100); // a few reconnect attempts find nobody listening
        return VhostUserBackend.serve(socket, models);
    }

    @Test
    void shouldKeepReadingEntropyAcrossABackendRestart() throws Exception {
        Path socket = dir.resolve("rng.sock");
        List<RngDevice> devices = new CopyOnWriteArrayList<>();
        Supplier<RngDevice> models = () -> {
            RngDevice d = new RngDevice();
            devices.add(d);
            return d;
        };
        VhostUserBackend backend = VhostUserBackend.serve(socket, models);
        try (Vm vm = new Vm(socket, RngDevice.DEVICE_ID, 0, Duration.ofSeconds(20));
             EntropySource source = entropy(vm)) {
            byte[] before = new byte[64 * 1024];
            source.read(before);
            assertTrue(nonZero(before) > 60_000);

            // A reader that keeps going while the backend is closed and served again.
            AtomicBoolean stop = new AtomicBoolean();
            AtomicLong bytesRead = new AtomicLong();
            CompletableFuture<Void> reader = CompletableFuture.runAsync(() -> {
                byte[] chunk = new byte[10_000];
                while (!stop.get()) {
                    try {
                        source.read(chunk);
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                    bytesRead.addAndGet(chunk.length);
                }
            }, r -> Thread.ofPlatform().daemon().name("test entropy reader").start(r));
            awaitTrue(() -> bytesRead.get() > 100_000, "the reader reads");
            backend = restart(backend, vm, socket, models);
            awaitTrue(() -> !vm.transport.isDetached(), "the transport reattached");
            long afterReattach = bytesRead.get();
            awaitTrue(() -> bytesRead.get() > afterReattach + 200_000 || reader.isDone(), "the reader goes on");
            stop.set(true);
            reader.get(10, TimeUnit.SECONDS); // no exception reached the caller

            // A read begun while the backend is away waits for the next one.
            backend = restart(backend, vm, socket, models);
            byte[] after = new byte[64 * 1024];
            source.read(after);
            assertTrue(nonZero(after) > 60_000);
            assertEquals(2, source.metrics().reattaches(), source.metrics().toString());
            assertEquals(3, devices.size());
            assertTrue(devices.get(2).metrics().bytes() >= after.length, devices.get(2).metrics().toString());
            assertFalse(vm.transport.isBroken(), vm.transport.toString());
        } finally {
            backend.close();
        }
    }

    @Test
    void shouldFailReadsWithAnIoExceptionWhenTheBackendDoesNotComeBack() throws Exception {
        Path socket = dir.resolve("gone.sock");
        VhostUserBackend backend = VhostUserBackend.serve(socket, RngDevice::new);
        try (Vm vm = new Vm(socket, RngDevice.DEVICE_ID, 0, Duration.ofMillis(800));
             EntropySource source = entropy(vm)) {
            source.read(new byte[4096]);
            backend.close();
            long start = System.nanoTime();
            IOException e = assertThrows(IOException.class, () -> source.read(new byte[100_000]));
            assertTrue(e.getMessage().contains("did not come back within 800 ms"), e.getMessage());
            assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(5), "took too long");
            assertTrue(vm.transport.isBroken());
            IOException again = assertThrows(IOException.class, () -> source.read(new byte[1]));
            assertTrue(again.getMessage().contains("transport broken"), again.getMessage());
        } finally {
            backend.close();
        }
    }

    @Test
    void shouldCarryConsoleLinesBothWaysAcrossABackendRestart() throws Exception {
        Path socket = dir.resolve("console-vu.sock");
        AtomicInteger generation = new AtomicInteger();
        List<ConsoleDevice> devices = new CopyOnWriteArrayList<>();
        Supplier<ConsoleDevice> models = () -> {
            ConsoleDevice d = new ConsoleDevice(ConsoleEndpoint.unixSocket(dir.resolve("port" + generation.incrementAndGet() + ".sock")));
            devices.add(d);
            return d;
        };
        VhostUserBackend backend = VhostUserBackend.serve(socket, models);
        try (Vm vm = new Vm(socket, ConsoleDevice.DEVICE_ID, ConsoleConfigLayout.CONFIG_LENGTH, Duration.ofSeconds(20))) {
            Console console = new Console(vm.frontend, vm.ram.segment().asSlice(0, Console.RAM_BYTES), RAM_GPA);
            SocketChannel client1 = connect(dir.resolve("port1.sock"));
            for (int i = 0; i < 10; i++) {
                console.output().write(line(i));
            }
            console.output().flush();
            for (int i = 0; i < 10; i++) {
                assertEquals("line " + i, readLine(client1));
            }
            client1.write(ByteBuffer.wrap("hello from backend 1\n".getBytes(StandardCharsets.UTF_8)));
            BufferedReader guestReader = new BufferedReader(new InputStreamReader(console.input(), StandardCharsets.UTF_8));
            assertEquals("hello from backend 1", guestReader.readLine());

            // The old backend's client keeps reading, as a terminal would: a client that stops reading fills
            // the socket (each small write costs a whole buffer there), and a closing console gives a
            // stalled client only a second before it drops what it still holds.
            CompletableFuture<List<Integer>> oldClient = CompletableFuture.supplyAsync(() -> {
                List<Integer> got = new ArrayList<>();
                try {
                    for (String l; (l = readLineOrNull(client1)) != null; ) {
                        assertTrue(l.matches("line \\d+"), "a whole line: " + l);
                        got.add(Integer.parseInt(l.substring(5)));
                    }
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
                return got;
            }, r -> Thread.ofPlatform().daemon().name("test old client").start(r));

            // A reader blocked across the restart, and a writer going on through it.
            CompletableFuture<String> nextInput = CompletableFuture.supplyAsync(() -> {
                try {
                    return guestReader.readLine();
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            }, r -> Thread.ofPlatform().daemon().name("test console reader").start(r));
            int lines = 3000;
            AtomicInteger written = new AtomicInteger(10);
            CompletableFuture<Void> writer = CompletableFuture.runAsync(() -> {
                try {
                    for (int i = 10; i < lines; i++) {
                        console.output().write(line(i));
                        written.set(i + 1);
                        if (i % 7 == 0) {
                            Thread.sleep(1); // spread the lines over the restart
                        }
                    }
                    console.output().flush();
                } catch (IOException e) {
                    throw new RuntimeException(e);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }, r -> Thread.ofPlatform().daemon().name("test console writer").start(r));
            awaitTrue(() -> written.get() > 500, "the writer writes");
            backend.close(); // mid-stream
            awaitTrue(vm.transport::isDetached, "the transport detached");
            int writtenAtDetach = written.get();
            Thread.sleep(100);
            backend = VhostUserBackend.serve(socket, models);
            awaitTrue(() -> Files.exists(dir.resolve("port2.sock")), "the new backend's console listens");
            SocketChannel client2 = connect(dir.resolve("port2.sock"));
            writer.get(30, TimeUnit.SECONDS); // no exception reached the writer

            // Every line begun after the detach reaches the new backend, in order; the first few may
            // be chunks the old backend had not acknowledged (and may have written already).
            List<Integer> received = new ArrayList<>();
            while (received.isEmpty() || received.getLast() != lines - 1) {
                String l = readLine(client2);
                assertTrue(l.matches("line \\d+"), "a whole line: " + l);
                received.add(Integer.parseInt(l.substring(5)));
            }
            int first = writtenAtDetach + 1;
            assertTrue(received.getFirst() <= first, "first line on the new backend " + received.getFirst() + ", detached at " + first);
            for (int k = 1; k < received.size(); k++) {
                assertEquals(received.get(k - 1) + 1, received.get(k), "consecutive lines on the new backend");
            }
            assertTrue(writtenAtDetach < lines - 100, "the backend went away mid-stream: " + writtenAtDetach);
            assertEquals(1, console.metrics().reattaches(), console.metrics().toString());

            // What the old backend took reached its client; with what the new one got, nothing is missing.
            List<Integer> before = oldClient.get(30, TimeUnit.SECONDS); // the old backend closed: end of stream
            for (int k = 0; k < before.size(); k++) {
                assertEquals(10 + k, before.get(k), "consecutive lines on the old backend");
            }
            int lastBefore = before.isEmpty() ? 9 : before.getLast();
            // Every line reached one backend's client or the other's: the driver resends what the old device
            // did not complete, and the old device delivers what it completed before it closes.
            assertTrue(received.getFirst() <= lastBefore + 1, "lines " + (lastBefore + 1) + " to " + (received.getFirst() - 1)
                    + " reached neither backend's client; old device " + devices.getFirst().metrics() + "; " + console.metrics());
            System.out.println("console across the restart: old backend's client got up to line " + lastBefore
                    + ", new backend from line " + received.getFirst() + " (detached after " + writtenAtDetach + " lines); "
                    + console.metrics().retransmitRequests() + " transmit buffers given again");

            client2.write(ByteBuffer.wrap("hello from backend 2\n".getBytes(StandardCharsets.UTF_8)));
            assertEquals("hello from backend 2", nextInput.get(10, TimeUnit.SECONDS));
            console.output().write("after the restart\n".getBytes(StandardCharsets.UTF_8));
            console.output().flush();
            assertEquals("after the restart", readLine(client2));
            assertFalse(vm.transport.isBroken(), vm.transport.toString());
            console.close();
            client1.close();
            client2.close();
        } finally {
            backend.close();
        }
        assertEquals(2, devices.size());
    }

    @Test
    void rejectsAConsoleBackendThatComesBackWithOtherFeatures() throws Exception {
        Path socket = dir.resolve("changed.sock");
        VhostUserBackend backend = VhostUserBackend.serve(socket, () -> new ConsoleDevice(ConsoleEndpoint.file(dir.resolve("out1.log"))));
        try (Vm vm = new Vm(socket, ConsoleDevice.DEVICE_ID, ConsoleConfigLayout.CONFIG_LENGTH, Duration.ofSeconds(20))) {
            Console console = new Console(vm.frontend, vm.ram.segment().asSlice(0, Console.RAM_BYTES), RAM_GPA);
            console.output().write(line(1));
            console.output().flush();
            backend.close();
            awaitTrue(vm.transport::isDetached, "the transport detached");
            // VIRTIO_CONSOLE_F_SIZE offered now.
            backend = VhostUserBackend.serve(socket, () -> new ConsoleDevice(ConsoleEndpoint.file(dir.resolve("out2.log")), 80, 24));
            IOException e = assertThrows(IOException.class, () -> {
                console.output().write(line(2));
                console.output().flush();
            });
            assertTrue(e.getMessage().contains("came back with features"), e.getMessage());
            assertThrows(IOException.class, () -> console.input().read(), "the reader fails too");
            assertTrue(vm.transport.isBroken());
            console.close();
        } finally {
            backend.close();
        }
    }

    private static byte[] line(int i) {
        return ("line " + i + "\n").getBytes(StandardCharsets.UTF_8);
    }

    private static int nonZero(byte[] b) {
        int n = 0;
        for (byte x : b) {
            n += x != 0 ? 1 : 0;
        }
        return n;
    }

    private interface Condition {
        boolean holds() throws Exception;
    }

    private static void awaitTrue(Condition condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        try {
            while (!condition.holds()) {
                if (System.nanoTime() > deadline) {
                    throw new AssertionError("timed out waiting until " + what);
                }
                Thread.sleep(5);
            }
        } catch (InterruptedException | AssertionError e) {
            throw e;
        } catch (Exception e) {
            throw new AssertionError(what + ": " + e, e);
        }
    }

    private static SocketChannel connect(Path socket) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
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

    /** A line, or null at end of stream (the old backend's port closed). */
    private static String readLineOrNull(SocketChannel client) throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        ByteBuffer one = ByteBuffer.allocate(1);
        while (true) {
            one.clear();
            if (client.read(one) < 0) {
                assertEquals(0, line.size(), "a partial line before end of stream: " + line);
                return null;
            }
            if (one.get(0) == '\n') {
                return line.toString(StandardCharsets.UTF_8);
            }
            line.write(one.get(0));
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
