package dev.airlock.devices.rng;

import dev.airlock.devices.DeviceWorld;
import dev.airlock.transport.TransportKind;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.VirtioFeatures;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link EntropySource} across a backend that goes away and comes back ({@link DetachingTransport}). */
class EntropySourceReattachTest {
    private final DeviceWorld world = new DeviceWorld();
    private final List<AutoCloseable> closeables = new ArrayList<>();

    @AfterEach
    void close() throws Exception {
        for (AutoCloseable c : closeables.reversed()) {
            c.close();
        }
        world.close();
    }

    /** A driver over a detachable transport to {@code device}. */
    private record Setup(DetachingTransport transport, VirtioFrontend frontend, EntropySource source) { }

    private Setup open(TransportKind kind, RngDevice device) {
        closeables.add(device);
        DeviceWorld.Guest guest = world.guest("guest1");
        DetachingTransport transport = new DetachingTransport(world.attach(kind, guest, 0, device).transport());
        VirtioFrontend frontend = new VirtioFrontend(transport, guest.vm().addressSpace());
        closeables.add(frontend);
        MemorySegment ram = guest.vm().addressSpace().translate(0, DeviceWorld.GUEST_RAM);
        EntropySource source = new EntropySource(frontend, ram, 0);
        closeables.add(source);
        return new Setup(transport, frontend, source);
    }

    private static CompletableFuture<byte[]> readAsync(EntropySource source, int length) {
        CompletableFuture<byte[]> done = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("test entropy reader").start(() -> {
            try {
                byte[] b = new byte[length];
                source.read(b);
                done.complete(b);
            } catch (Throwable t) {
                done.completeExceptionally(t);
            }
        });
        return done;
    }

    private static byte[] stream(long seed, int length) {
        byte[] b = new byte[length];
        SplittableRandom random = new SplittableRandom(seed);
        for (int i = 0; i < length; i++) {
            b[i] = (byte) random.nextInt(256);
        }
        return b;
    }

    /** One byte per draw, so the output does not depend on how it is cut into requests. */
    private static EntropySupplier byteStream(long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        return bytes -> {
            synchronized (random) {
                for (int i = 0; i < bytes.length; i++) {
                    bytes[i] = (byte) random.nextInt(256);
                }
            }
        };
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldWaitWhileDetachedAndGoOnWithTheStreamAfterAReattach(TransportKind kind) throws Exception {
        Setup s = open(kind, new RngDevice(byteStream(5)));
        byte[] before = new byte[20_000];
        s.source().read(before);

        s.transport().detach();
        CompletableFuture<byte[]> after = readAsync(s.source(), 30_000);
        Thread.sleep(200);
        assertFalse(after.isDone(), "a read waits while the backend is away");
        s.transport().reattach(-1L);

        byte[] expected = stream(5, 50_000);
        assertArrayEquals(Arrays.copyOfRange(expected, 0, 20_000), before);
        assertArrayEquals(Arrays.copyOfRange(expected, 20_000, 50_000), after.get(5, TimeUnit.SECONDS),
                "nothing handed out twice, nothing skipped");
        assertEquals(1, s.source().metrics().reattaches());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldAskAgainForWhatWasInFlightWhenTheBackendWentAway(TransportKind kind) throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        EntropySupplier bytes = byteStream(7);
        Setup s = open(kind, new RngDevice(b -> {
            try {
                release.await(); // a starved source: the requests stay in flight
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            bytes.nextBytes(b);
        }));
        CompletableFuture<byte[]> read = readAsync(s.source(), 10_000);
        Thread.sleep(100);
        assertFalse(read.isDone());

        s.transport().detach();
        Thread.sleep(100);
        assertFalse(read.isDone(), "the read waits for the next backend, no exception");
        release.countDown();
        s.transport().reattach(-1L);

        byte[] got = read.get(5, TimeUnit.SECONDS);
        byte[] expected = stream(7, 200_000);
        int at = indexOf(expected, got);
        assertTrue(at >= 0, "the bytes come from the device's stream, in order");
        assertEquals(1, s.source().metrics().reattaches());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void rejectsADeviceThatComesBackWithOtherFeatures(TransportKind kind) throws Exception {
        Setup s = open(kind, new RngDevice());
        s.source().read(new byte[5000]);
        s.transport().detach();
        s.transport().reattach(~VirtioFeatures.of(VirtioFeatures.VIRTIO_F_EVENT_IDX));
        IOException e = assertThrows(IOException.class, () -> s.source().read(new byte[100]));
        assertTrue(e.getMessage().contains("came back with features"), e.getMessage());
        IOException again = assertThrows(IOException.class, () -> s.source().read(new byte[100]));
        assertEquals(e.getMessage(), again.getMessage(), "failed for good");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldFailAWaitingReadWhenTheTransportBreaksForGood(TransportKind kind) throws Exception {
        Setup s = open(kind, new RngDevice());
        s.source().read(new byte[5000]);
        s.transport().detach();
        CompletableFuture<byte[]> read = readAsync(s.source(), 10_000);
        Thread.sleep(100);
        assertFalse(read.isDone());
        s.transport().breakForGood();
        ExecutionException e = assertThrows(ExecutionException.class, () -> read.get(5, TimeUnit.SECONDS));
        assertTrue(e.getCause() instanceof IOException && e.getCause().getMessage().contains("transport broken"),
                String.valueOf(e.getCause()));
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }
}
