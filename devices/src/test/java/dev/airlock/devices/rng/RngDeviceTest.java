package dev.airlock.devices.rng;

import dev.airlock.devices.DeviceWorld;
import dev.airlock.transport.TransportKind;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtqueueDriver;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The entropy device and its driver, end to end over both transports (in-process runtime). */
class RngDeviceTest {
    private final DeviceWorld world = new DeviceWorld();

    private final List<RngDevice> devices = new ArrayList<>();

    @AfterEach
    void close() {
        world.close();
        devices.forEach(RngDevice::close);
    }

    private RngDevice device(RngDevice device) {
        devices.add(device);
        return device;
    }

    private static MemorySegment ram(DeviceWorld.Guest guest) {
        return guest.vm().addressSpace().translate(0, DeviceWorld.GUEST_RAM);
    }

    /** A seeded source whose output does not depend on how it is cut into requests: one byte per draw. */
    private static final class ByteStream implements EntropySupplier {
        private final SplittableRandom random;

        ByteStream(long seed) {
            this.random = new SplittableRandom(seed);
        }

        @Override
        public synchronized void nextBytes(byte[] bytes) {
            for (int i = 0; i < bytes.length; i++) {
                bytes[i] = (byte) random.nextInt(256);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldDeliverRandomBytesFromSecureRandom(TransportKind kind) throws IOException {
        DeviceWorld.Guest guest = world.guest("guest1");
        RngDevice device = device(new RngDevice());
        EntropySource source = new EntropySource(world.attach(kind, guest, 0, device), ram(guest), 0);
        byte[] bytes = new byte[100_000];
        source.read(bytes);
        int[] counts = new int[256];
        for (byte b : bytes) {
            counts[b & 0xff]++;
        }
        assertTrue(Arrays.stream(counts).allMatch(c -> c > 200 && c < 600),
                "every byte value appears about 390 times in 100000 random bytes: " + Arrays.toString(counts));
        assertEquals(100_000, device.metrics().bytes());
        assertEquals(100_000, source.metrics().bytes());
        assertTrue(device.metrics().requests() >= 100_000 / EntropySource.BUFFER_BYTES, device.metrics().toString());
        assertTrue(device.metrics().bytesPerSecond() > 0 && device.metrics().sourceBytesPerSecond() > 0, device.metrics().toString());
        assertEquals(0, world.deviceHost().faultCount(guest.id(), 0));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldDeliverExactlyTheInjectedSeededStreamAcrossPartialFills(TransportKind kind) throws IOException {
        DeviceWorld.Guest guest = world.guest("guest1");
        // A cap below the driver's buffer size: every request is filled only partly, and the driver asks again.
        RngDevice device = device(new RngDevice(new ByteStream(42), 1000));
        EntropySource source = new EntropySource(world.attach(kind, guest, 0, device), ram(guest), 0);
        byte[] first = new byte[10_007];
        byte[] second = new byte[3];
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment third = arena.allocate(70_001);
            source.read(first);
            source.read(second);
            source.read(third);
            byte[] expected = new byte[first.length + second.length + (int) third.byteSize()];
            new ByteStream(42).nextBytes(expected);
            byte[] got = new byte[expected.length];
            System.arraycopy(first, 0, got, 0, first.length);
            System.arraycopy(second, 0, got, first.length, second.length);
            MemorySegment.copy(third, ValueLayout.JAVA_BYTE, 0, got, first.length + second.length, (int) third.byteSize());
            assertArrayEquals(expected, got, "the guest received the source's stream, in order, nothing lost or repeated");
        }
        assertTrue(device.metrics().requests() >= 80_011 / 1000, "the cap split the reads: " + device.metrics());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldDeliverASeededJavaUtilRandomStream(TransportKind kind) throws IOException {
        DeviceWorld.Guest guest = world.guest("guest1");
        RngDevice device = device(new RngDevice(EntropySupplier.of(new Random(7)), 1024));
        EntropySource source = new EntropySource(world.attach(kind, guest, 0, device), ram(guest), 0);
        byte[] got = new byte[64 * 1024];
        source.read(got);
        // Random.nextBytes draws whole ints; requests of multiples of 4 bytes concatenate to one stream.
        byte[] expected = new byte[got.length];
        new Random(7).nextBytes(expected);
        assertArrayEquals(expected, got);
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void rejectsADeviceReadableBufferWhileAnotherGuestKeepsWorking(TransportKind kind) throws Exception {
        DeviceWorld.Guest hostile = world.guest("hostile");
        DeviceWorld.Guest honest = world.guest("honest");
        VirtioFrontend raw = world.attach(kind, hostile, 0, device(new RngDevice()));
        RngDevice honestDevice = device(new RngDevice());
        EntropySource honestSource = new EntropySource(world.attach(kind, honest, 0, honestDevice), ram(honest), 0);

        raw.initialize(RngDevice.DEVICE_ID, RngDevice.FEATURES, 16);
        VirtqueueDriver<Integer> q = raw.queue(RngDevice.REQUESTQ);
        q.add(new ScatterGather(2).out(0x1000, 64).in(0x2000, 64), 1);
        raw.kick(RngDevice.REQUESTQ);

        awaitStatus(hostile, DeviceStatus.DEVICE_NEEDS_RESET);
        VirtioFault fault = world.deviceHost().lastFault(hostile.id(), 0);
        assertNotNull(fault);
        assertTrue(fault.reason().contains("device-readable buffer") && fault.field().endsWith(".readableBytes"), fault.message());

        byte[] bytes = new byte[50_000];
        honestSource.read(bytes);
        assertTrue(nonZero(bytes) > 49_000, "the other guest's device keeps serving");
        assertEquals(0, world.deviceHost().faultCount(honest.id(), 0));
        assertEquals(0, world.deviceHost().internalErrors());

        // The hostile guest can recover its own device with a reset.
        EntropySource recovered = new EntropySource(raw, ram(hostile), 0);
        recovered.read(new byte[5000]);
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK,
                world.deviceHost().deviceStatus(hostile.id(), 0));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldResetAndReinitialise(TransportKind kind) throws IOException {
        DeviceWorld.Guest guest = world.guest("guest1");
        RngDevice device = device(new RngDevice(new ByteStream(3)));
        VirtioFrontend frontend = world.attach(kind, guest, 0, device);
        EntropySource source = new EntropySource(frontend, ram(guest), 0);
        byte[] before = new byte[20_000];
        source.read(before);
        source.close();
        assertEquals(0, world.deviceHost().deviceStatus(guest.id(), 0), "close reset the device");
        assertThrows(IOException.class, () -> source.read(new byte[1]), "a closed source refuses reads");
        assertEquals(0, frontend.pool().stats().usedSlots(), "nothing stays mapped in the bounce pool");

        EntropySource again = new EntropySource(frontend, ram(guest), 0);
        byte[] after = new byte[20_000];
        again.read(after);
        byte[] expected = new byte[40_000];
        new ByteStream(3).nextBytes(expected);
        assertArrayEquals(Arrays.copyOfRange(expected, 20_000, 40_000), after, "the device went on from where it stopped");
        assertEquals(40_000, device.metrics().bytes());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldResetPromptlyWhileTheSourceBlocks(TransportKind kind) throws Exception {
        DeviceWorld.Guest guest = world.guest("guest1");
        CountDownLatch release = new CountDownLatch(1);
        ByteStream stream = new ByteStream(9);
        RngDevice device = device(new RngDevice(bytes -> {
            try {
                release.await(); // a source starved of entropy
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            stream.nextBytes(bytes);
        }));
        VirtioFrontend frontend = world.attach(kind, guest, 0, device);
        EntropySource source = new EntropySource(frontend, ram(guest), 0);
        CompletableFuture<Throwable> reader = new CompletableFuture<>();
        Thread.ofPlatform().daemon().start(() -> {
            try {
                source.read(new byte[100]);
                reader.complete(null);
            } catch (Throwable t) {
                reader.complete(t);
            }
        });
        Thread.sleep(100);
        assertTrue(!reader.isDone(), "the read waits for the source");

        long start = System.nanoTime();
        source.close();
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(2), "the reset did not wait for the source");
        assertTrue(reader.get(5, TimeUnit.SECONDS) instanceof IOException, "the blocked read failed when the source closed");
        assertEquals(0, world.deviceHost().deviceStatus(guest.id(), 0));

        release.countDown();
        byte[] got = new byte[10_000];
        new EntropySource(frontend, ram(guest), 0).read(got);
        byte[] expected = new byte[10_000];
        new ByteStream(9).nextBytes(expected);
        assertArrayEquals(expected, got, "nothing was lost or handed out twice across the reset");
    }

    @Test
    void rejectsABadRequestCap() {
        assertThrows(IllegalArgumentException.class, () -> new RngDevice(new ByteStream(1), 0));
    }

    private void awaitStatus(DeviceWorld.Guest guest, int bit) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while ((world.deviceHost().deviceStatus(guest.id(), 0) & bit) == 0) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("status " + DeviceStatus.describe(world.deviceHost().deviceStatus(guest.id(), 0))
                        + " never got " + DeviceStatus.describe(bit));
            }
            Thread.sleep(2);
        }
    }

    private static int nonZero(byte[] bytes) {
        int n = 0;
        for (byte b : bytes) {
            n += b != 0 ? 1 : 0;
        }
        return n;
    }
}
