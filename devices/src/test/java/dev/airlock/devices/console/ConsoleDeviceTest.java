package dev.airlock.devices.console;

import dev.airlock.devices.DeviceWorld;
import dev.airlock.transport.TransportException;
import dev.airlock.transport.TransportKind;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFault;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The console device and its driver, end to end over both transports (in-process runtime). */
class ConsoleDeviceTest {
    private final DeviceWorld world = new DeviceWorld();
    private final List<AutoCloseable> closeables = new ArrayList<>();

    @TempDir
    Path dir;

    @AfterEach
    void close() throws Exception {
        world.close();
        for (AutoCloseable c : closeables.reversed()) {
            c.close();
        }
    }

    private static MemorySegment ram(DeviceWorld.Guest guest) {
        return guest.vm().addressSpace().translate(0, DeviceWorld.GUEST_RAM);
    }

    private ConsoleDevice device(ConsoleDevice device) {
        closeables.add(device);
        return device;
    }

    private SocketChannel connect(Path socket) throws IOException {
        SocketChannel client = SocketChannel.open(UnixDomainSocketAddress.of(socket));
        closeables.add(client);
        return client;
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldCarryLinesBetweenAUnixSocketClientAndTheGuest(TransportKind kind) throws Exception {
        Path socket = dir.resolve("console.sock");
        DeviceWorld.Guest guest = world.guest("guest1");
        ConsoleDevice device = device(new ConsoleDevice(ConsoleEndpoint.unixSocket(socket), 80, 24));
        Console console = new Console(world.attach(kind, guest, 0, device), ram(guest), 0);
        SocketChannel client = connect(socket);

        console.output().write("hello from the guest\n".getBytes(StandardCharsets.UTF_8));
        console.output().flush();
        assertEquals("hello from the guest", readLine(client));

        client.write(ByteBuffer.wrap("hello from the host\n".getBytes(StandardCharsets.UTF_8)));
        BufferedReader guestReader = new BufferedReader(new InputStreamReader(console.input(), StandardCharsets.UTF_8));
        assertEquals("hello from the host", guestReader.readLine());

        assertEquals(new Console.Size(80, 24), console.size());
        device.resize(132, 43);
        assertEquals(new Console.Size(132, 43), console.size());
        assertEquals("hello from the guest\n".length(), device.metrics().transmitBytes(), device.metrics().toString());
        assertEquals("hello from the host\n".length(), device.metrics().receiveBytes());
        assertEquals(0, world.deviceHost().faultCount(guest.id(), 0));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldAnswerAvailableWhileAReadIsBlocked(TransportKind kind) throws Exception {
        java.io.PipedInputStream silent = new java.io.PipedInputStream(new java.io.PipedOutputStream());
        DeviceWorld.Guest guest = world.guest("guest1");
        ConsoleDevice device = device(new ConsoleDevice(ConsoleEndpoint.streams(silent, java.io.OutputStream.nullOutputStream())));
        Console console = new Console(world.attach(kind, guest, 0, device), ram(guest), 0);
        Thread reader = Thread.ofPlatform().daemon().start(() -> {
            try {
                console.input().read(); // blocks: nothing comes
            } catch (IOException e) {
                // closed by the test's end
            }
        });
        while (reader.getState() != Thread.State.WAITING && reader.getState() != Thread.State.TIMED_WAITING) {
            Thread.sleep(1);
        }
        CompletableFuture<Integer> available = CompletableFuture.supplyAsync(() -> {
            try {
                return console.input().available();
            } catch (IOException e) {
                throw new RuntimeException(e);
            }
        });
        assertEquals(0, available.get(5, TimeUnit.SECONDS), "available() must not wait for the blocked read");
        console.close();
    }

    /** A sink that takes 300 ms per write and refuses writes once closed, like a slow client going away. */
    private static final class SlowSink extends java.io.OutputStream {
        final java.io.ByteArrayOutputStream got = new java.io.ByteArrayOutputStream();
        volatile boolean closed;

        @Override
        public void write(int b) throws IOException {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            try {
                Thread.sleep(300);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (closed) {
                throw new IOException("closed");
            }
            synchronized (got) {
                got.write(b, off, len);
            }
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldDeliverOutputTheDeviceTookBeforeClosing(TransportKind kind) throws Exception {
        SlowSink sink = new SlowSink();
        java.io.PipedInputStream silent = new java.io.PipedInputStream(new java.io.PipedOutputStream());
        DeviceWorld.Guest guest = world.guest("guest1");
        ConsoleDevice device = device(new ConsoleDevice(ConsoleEndpoint.streams(silent, sink)));
        Console console = new Console(world.attach(kind, guest, 0, device), ram(guest), 0);
        byte[] text = "taken by the device, still being written when it closes\n".getBytes(StandardCharsets.UTF_8);
        console.output().write(text);
        console.output().flush(); // the device took it (used): from here it is the device's to deliver
        device.close(); // while the output pump is still inside its slow write
        synchronized (sink.got) {
            assertArrayEquals(text, sink.got.toByteArray());
        }
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldServeTheNextClientWhenOneDisconnects(TransportKind kind) throws Exception {
        Path socket = dir.resolve("console.sock");
        DeviceWorld.Guest guest = world.guest("guest1");
        ConsoleDevice device = device(new ConsoleDevice(ConsoleEndpoint.unixSocket(socket)));
        Console console = new Console(world.attach(kind, guest, 0, device), ram(guest), 0);
        BufferedReader guestReader = new BufferedReader(new InputStreamReader(console.input(), StandardCharsets.UTF_8));
        try (SocketChannel first = SocketChannel.open(UnixDomainSocketAddress.of(socket))) {
            first.write(ByteBuffer.wrap("one\n".getBytes(StandardCharsets.UTF_8)));
            assertEquals("one", guestReader.readLine());
        }
        SocketChannel second = connect(socket);
        second.write(ByteBuffer.wrap("two\n".getBytes(StandardCharsets.UTF_8)));
        assertEquals("two", guestReader.readLine());
        console.output().write("to the second\n".getBytes(StandardCharsets.UTF_8));
        assertEquals("to the second", readLine(second));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldMoveOneMebibyteEachWayIntact(TransportKind kind) throws Exception {
        Path socket = dir.resolve("console.sock");
        DeviceWorld.Guest guest = world.guest("guest1");
        ConsoleDevice device = device(new ConsoleDevice(ConsoleEndpoint.unixSocket(socket)));
        Console console = new Console(world.attach(kind, guest, 0, device), ram(guest), 0);
        SocketChannel client = connect(socket);
        byte[] toGuest = random(1 << 20, 1);
        byte[] fromGuest = random(1 << 20, 2);
        // One thread per party: the common pool may have a single thread on a small machine.
        ExecutorService threads = Executors.newThreadPerTaskExecutor(
                Thread.ofPlatform().daemon().factory());
        closeables.add(threads::shutdownNow);

        CompletableFuture<Void> clientWrites = CompletableFuture.runAsync(() -> {
            try {
                ByteBuffer b = ByteBuffer.wrap(toGuest);
                while (b.hasRemaining()) {
                    client.write(b);
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, threads);
        CompletableFuture<byte[]> clientReads = CompletableFuture.supplyAsync(() -> {
            try {
                return readFully(client, fromGuest.length);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, threads);
        CompletableFuture<Void> guestWrites = CompletableFuture.runAsync(() -> {
            try {
                // Uneven writes, to cross buffer boundaries.
                SplittableRandom r = new SplittableRandom(3);
                int done = 0;
                while (done < fromGuest.length) {
                    int n = Math.min(fromGuest.length - done, 1 + r.nextInt(10_000));
                    console.output().write(fromGuest, done, n);
                    done += n;
                }
                console.output().flush();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, threads);
        byte[] received = console.input().readNBytes(toGuest.length);

        assertArrayEquals(toGuest, received, "1 MiB from the client reached the guest intact");
        assertArrayEquals(fromGuest, clientReads.get(30, TimeUnit.SECONDS), "1 MiB from the guest reached the client intact");
        clientWrites.get(30, TimeUnit.SECONDS);
        guestWrites.get(30, TimeUnit.SECONDS);
        assertEquals(1 << 20, device.metrics().receiveBytes());
        assertEquals(1 << 20, device.metrics().transmitBytes());
        assertEquals(0, world.deviceHost().faultCount(guest.id(), 0));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldAppendGuestOutputToAFileAndOfferNoInput(TransportKind kind) throws Exception {
        Path file = dir.resolve("console.log");
        Files.writeString(file, "earlier\n");
        DeviceWorld.Guest guest = world.guest("guest1");
        ConsoleDevice device = device(new ConsoleDevice(ConsoleEndpoint.file(file)));
        Console console = new Console(world.attach(kind, guest, 0, device), ram(guest), 0);
        assertNull(console.size(), "no VIRTIO_CONSOLE_F_SIZE without a size");

        console.output().write("line one\nline two\n".getBytes(StandardCharsets.UTF_8));
        console.output().flush();
        assertTrue(console.emergencyWrite('!'));
        console.output().write("\n".getBytes(StandardCharsets.UTF_8));
        console.output().flush();
        awaitFile(file, "earlier\nline one\nline two\n!\n");
        assertEquals(1, device.metrics().emergencyBytes());
        assertEquals(0, console.input().available(), "a file endpoint has no input");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void rejectsADeviceReadableBufferOnTheReceiveqWhileAnotherGuestKeepsWorking(TransportKind kind) throws Exception {
        assertHostileChainRefused(kind, ConsoleDevice.RECEIVEQ, "on the receiveq", ".readableBytes");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void rejectsADeviceWritableBufferOnTheTransmitqWhileAnotherGuestKeepsWorking(TransportKind kind) throws Exception {
        assertHostileChainRefused(kind, ConsoleDevice.TRANSMITQ, "on the transmitq", ".writableBytes");
    }

    private void assertHostileChainRefused(TransportKind kind, int queue, String where, String field) throws Exception {
        DeviceWorld.Guest hostile = world.guest("hostile");
        DeviceWorld.Guest honest = world.guest("honest");
        ConsoleDevice hostileDevice = device(new ConsoleDevice(ConsoleEndpoint.file(dir.resolve("hostile.log"))));
        VirtioFrontend raw = world.attach(kind, hostile, 0, hostileDevice);
        Path socket = dir.resolve("honest.sock");
        ConsoleDevice honestDevice = device(new ConsoleDevice(ConsoleEndpoint.unixSocket(socket)));
        Console honestConsole = new Console(world.attach(kind, honest, 0, honestDevice), ram(honest), 0);
        SocketChannel client = connect(socket);

        raw.initialize(ConsoleDevice.DEVICE_ID, ConsoleDevice.RING_FEATURES, 16, 16);
        // A receive buffer must be device-writable only, a transmit buffer device-readable only: give both kinds.
        raw.queue(queue).add(new ScatterGather(2).out(0x1000, 64).in(0x2000, 64), 1);
        raw.kick(queue);

        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while ((world.deviceHost().deviceStatus(hostile.id(), 0) & DeviceStatus.DEVICE_NEEDS_RESET) == 0) {
            assertTrue(System.nanoTime() < deadline, "DEVICE_NEEDS_RESET within 5 s");
            Thread.sleep(2);
        }
        VirtioFault fault = world.deviceHost().lastFault(hostile.id(), 0);
        assertTrue(fault != null && fault.reason().contains(where) && fault.field().endsWith(field), String.valueOf(fault));
        assertEquals(1, hostileDevice.metrics().faults());

        honestConsole.output().write("still here\n".getBytes(StandardCharsets.UTF_8));
        assertEquals("still here", readLine(client));
        client.write(ByteBuffer.wrap("and you\n".getBytes(StandardCharsets.UTF_8)));
        assertEquals("and you", new BufferedReader(new InputStreamReader(honestConsole.input(), StandardCharsets.UTF_8)).readLine());
        assertEquals(0, world.deviceHost().faultCount(honest.id(), 0));
        assertEquals(0, world.deviceHost().internalErrors());

        // The hostile guest's own reset brings its device back.
        Console recovered = new Console(raw, ram(hostile), 0);
        recovered.output().write("recovered\n".getBytes(StandardCharsets.UTF_8));
        recovered.output().flush();
        awaitFile(dir.resolve("hostile.log"), "recovered\n");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldHoldInputAcrossAResetAndDeliverItAfterReinitialisation(TransportKind kind) throws Exception {
        Path socket = dir.resolve("console.sock");
        DeviceWorld.Guest guest = world.guest("guest1");
        ConsoleDevice device = device(new ConsoleDevice(ConsoleEndpoint.unixSocket(socket)));
        VirtioFrontend frontend = world.attach(kind, guest, 0, device);
        Console console = new Console(frontend, ram(guest), 0);
        SocketChannel client = connect(socket);
        client.write(ByteBuffer.wrap("before\n".getBytes(StandardCharsets.UTF_8)));
        assertEquals("before", new BufferedReader(new InputStreamReader(console.input(), StandardCharsets.UTF_8)).readLine());

        console.close();
        assertEquals(0, world.deviceHost().deviceStatus(guest.id(), 0), "close reset the device");
        assertEquals(-1, console.input().read(), "a closed console reads end of stream");
        assertThrows(IOException.class, () -> console.output().write(1));
        assertEquals(0, frontend.pool().stats().usedSlots(), "nothing stays mapped in the bounce pool");

        // Input that arrives while no driver is there is held, not dropped.
        byte[] held = random(100_000, 4);
        CompletableFuture<Void> clientWrites = CompletableFuture.runAsync(() -> {
            try {
                ByteBuffer b = ByteBuffer.wrap(held);
                while (b.hasRemaining()) {
                    client.write(b); // more than the port buffers: the rest waits in the socket
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }, Thread.ofPlatform().daemon()::start);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!portFull(device) && System.nanoTime() < deadline) {
            Thread.sleep(2);
        }
        assertTrue(portFull(device), "with no driver, the port holds input until its buffer is full");
        Console again = new Console(frontend, ram(guest), 0);
        assertArrayEquals(held, again.input().readNBytes(held.length));
        clientWrites.get(5, TimeUnit.SECONDS);
        again.output().write("after\n".getBytes(StandardCharsets.UTF_8));
        assertEquals("after", readLine(client));
        assertEquals(0, world.deviceHost().faultCount(guest.id(), 0));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldResetPromptlyWhileTheTransmitWorkerWaitsForASlowEndpoint(TransportKind kind) throws Exception {
        Path socket = dir.resolve("console.sock");
        DeviceWorld.Guest guest = world.guest("guest1");
        ConsoleDevice device = device(new ConsoleDevice(ConsoleEndpoint.unixSocket(socket)));
        VirtioFrontend frontend = world.attach(kind, guest, 0, device);
        Console console = new Console(frontend, ram(guest), 0);
        byte[] data = random(512 * 1024, 6);
        // No client is connected: output is held, the port's buffer fills, and the transmit worker waits for space.
        CompletableFuture<Throwable> writer = new CompletableFuture<>();
        Thread.ofPlatform().daemon().start(() -> {
            try {
                console.output().write(data);
                writer.complete(null);
            } catch (Throwable t) {
                writer.complete(t);
            }
        });
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (device.metrics().transmitBytes() < ConsolePort.RING_BYTES && System.nanoTime() < deadline) {
            Thread.sleep(2);
        }
        Thread.sleep(50);
        assertTrue(device.metrics().transmitBytes() < data.length, "the guest is held back: " + device.metrics());

        long start = System.nanoTime();
        console.close();
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(2), "the reset did not wait for the endpoint");
        assertTrue(writer.get(5, TimeUnit.SECONDS) instanceof IOException, "the blocked writer failed when the console closed");
        assertEquals(0, world.deviceHost().deviceStatus(guest.id(), 0));

        // What the device took before the reset is still delivered, in order, once a client connects.
        SocketChannel client = connect(socket);
        Console again = new Console(frontend, ram(guest), 0);
        again.output().write("tail\n".getBytes(StandardCharsets.UTF_8));
        again.output().flush();
        long completed = device.metrics().transmitBytes() - 5; // buffers the device used before the reset
        byte[] got = readUntilTail(client, "tail\n".getBytes(StandardCharsets.UTF_8));
        int held = got.length - 5;
        assertTrue(held >= completed && held <= data.length, held + " bytes held, " + completed + " completed");
        assertArrayEquals(Arrays.copyOf(data, held), Arrays.copyOf(got, held));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void rejectsWritesToReadOnlyConfigurationFields(TransportKind kind) {
        DeviceWorld.Guest guest = world.guest("guest1");
        ConsoleDevice device = device(new ConsoleDevice(ConsoleEndpoint.file(dir.resolve("c.log")), 80, 25));
        VirtioFrontend frontend = world.attach(kind, guest, 0, device);
        Console console = new Console(frontend, ram(guest), 0);
        assertThrows(TransportException.class,
                () -> frontend.writeConfig(ConsoleConfigLayout.COLS_OFFSET, 2, 1), "cols is read-only");
        byte[] maxPorts = new byte[4];
        frontend.readConfig(ConsoleConfigLayout.MAX_NR_PORTS_OFFSET, maxPorts);
        assertEquals(1, maxPorts[0]);
        byte[] emerg = new byte[4];
        frontend.readConfig(ConsoleConfigLayout.EMERG_WR_OFFSET, emerg);
        assertArrayEquals(new byte[4], emerg, "emerg_wr reads as 0");
        assertEquals(new Console.Size(80, 25), console.size());
        assertEquals(0, frontend.status() & DeviceStatus.DEVICE_NEEDS_RESET, "refused accesses do not break the device");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldWriteGuestOutputToAStreamEndpoint(TransportKind kind) throws Exception {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        DeviceWorld.Guest guest = world.guest("guest1");
        ConsoleDevice device = device(new ConsoleDevice(ConsoleEndpoint.streams(InputStream.nullInputStream(),
                new SynchronizedSink(sink))));
        Console console = new Console(world.attach(kind, guest, 0, device), ram(guest), 0);
        byte[] data = random(200_000, 5);
        console.output().write(data);
        console.output().flush();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (size(sink) < data.length && System.nanoTime() < deadline) {
            Thread.sleep(2);
        }
        synchronized (sink) {
            assertArrayEquals(data, sink.toByteArray());
        }
    }

    /** An output stream that writes under the sink's monitor, so the test can read it safely. */
    private static final class SynchronizedSink extends OutputStream {
        private final ByteArrayOutputStream sink;

        SynchronizedSink(ByteArrayOutputStream sink) {
            this.sink = sink;
        }

        @Override
        public void write(int b) {
            synchronized (sink) {
                sink.write(b);
            }
        }

        @Override
        public void write(byte[] b, int off, int len) {
            synchronized (sink) {
                sink.write(b, off, len);
            }
        }
    }

    private static int size(ByteArrayOutputStream sink) {
        synchronized (sink) {
            return sink.size();
        }
    }

    /** Whether the port's input buffer is full: input is being held back, not dropped. */
    private static boolean portFull(ConsoleDevice device) {
        return device.port().input.available() == ConsolePort.RING_BYTES;
    }

    private static void awaitFile(Path file, String expected) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        String content = Files.readString(file);
        while (!content.equals(expected) && System.nanoTime() < deadline) {
            Thread.sleep(5);
            content = Files.readString(file);
        }
        assertEquals(expected, content);
    }

    private static byte[] random(int length, long seed) {
        byte[] b = new byte[length];
        new SplittableRandom(seed).nextBytes(b);
        return b;
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

    /** Reads until the stream ends with {@code tail}. */
    private static byte[] readUntilTail(SocketChannel client, byte[] tail) throws IOException {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        ByteBuffer b = ByteBuffer.allocate(8192);
        while (true) {
            b.clear();
            if (client.read(b) < 0) {
                throw new IOException("end of stream after " + all.size() + " bytes");
            }
            all.write(b.array(), 0, b.position());
            byte[] bytes = all.toByteArray();
            if (bytes.length >= tail.length
                    && Arrays.equals(bytes, bytes.length - tail.length, bytes.length, tail, 0, tail.length)) {
                return bytes;
            }
        }
    }

    private static byte[] readFully(SocketChannel client, int length) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(length);
        while (b.hasRemaining()) {
            if (client.read(b) < 0) {
                throw new IOException("end of stream after " + b.position() + " bytes");
            }
        }
        return b.array();
    }
}
