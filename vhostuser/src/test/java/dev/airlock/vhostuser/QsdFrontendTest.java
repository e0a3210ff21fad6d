package dev.airlock.vhostuser;

import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.devices.blk.BlkIoException;
import dev.airlock.devices.blk.BlkRequestLayout;
import dev.airlock.devices.blk.BlockDevice;
import dev.airlock.memory.SharedMemory;
import dev.airlock.transport.DriverTransport;
import dev.airlock.transport.TransportException;
import dev.airlock.transport.VirtioFrontend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link VhostUserDriverTransport} driving real vhost-user-blk backends with Airlock's unchanged
 * {@link VirtioFrontend} and {@link BlockDevice}: qemu-storage-daemon, and Airlock's own backend.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class QsdFrontendTest {
    private static final long IMAGE_BYTES = 64L << 20;
    private static final int BLK_CONFIG_LENGTH = FrontendVm.BLK_CONFIG_LENGTH;
    private static final long SHARED_GPA = FrontendVm.SHARED_GPA;
    private static final int CHUNK_BYTES = 64 << 10;

    @TempDir
    Path dir;

    private Path image() throws IOException {
        return Qsd.image(dir.resolve("disk.raw"), IMAGE_BYTES);
    }

    private Qsd startQsd(Path image, Path socket, boolean writable) throws Exception {
        return Qsd.start(image, socket, writable, dir.resolve("qsd.log"));
    }

    /** 16 MiB of random data at random 64 KiB slots, flush, read back; checks the host file too if given. */
    private static void roundTrip(BlockDevice blk, Path image) throws IOException {
        assertEquals(IMAGE_BYTES / 512, blk.capacitySectors());
        assertFalse(blk.isReadOnly());
        Random random = new Random(42);
        List<Integer> slots = new ArrayList<>();
        for (int i = 0; i < IMAGE_BYTES / CHUNK_BYTES; i++) {
            slots.add(i);
        }
        Collections.shuffle(slots, random);
        List<Integer> written = slots.subList(0, (16 << 20) / CHUNK_BYTES);
        byte[][] data = new byte[written.size()][CHUNK_BYTES];
        for (int i = 0; i < written.size(); i++) {
            random.nextBytes(data[i]);
            blk.writeBytes((long) written.get(i) * CHUNK_BYTES, data[i], 0, CHUNK_BYTES);
        }
        blk.flush();
        byte[] back = new byte[CHUNK_BYTES];
        for (int i = 0; i < written.size(); i++) {
            blk.readBytes((long) written.get(i) * CHUNK_BYTES, back, 0, CHUNK_BYTES);
            assertArrayEquals(data[i], back, "slot " + written.get(i));
        }
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
            for (int i = 0; i < written.size(); i++) {
                f.seek((long) written.get(i) * CHUNK_BYTES);
                f.readFully(back);
                assertArrayEquals(data[i], back, "host file, slot " + written.get(i));
            }
        }
    }

    @Test
    void shouldWriteAndReadBackThroughQemuStorageDaemon() throws Exception {
        Path image = image();
        Path socket = dir.resolve("qsd.sock");
        Qsd qsd = startQsd(image, socket, true);
        try (FrontendVm vm = new FrontendVm(socket)) {
            roundTrip(vm.blk, image);
            assertFalse(vm.transport.isBroken());
            // 512 requests: a lost call notification would cost a 100 ms idle wait each
            assertTrue(vm.blk.missedWakeups() < 10, "missed wake-ups: " + vm.blk.missedWakeups());
        } finally {
            qsd.close();
        }
    }

    @Test
    void shouldReportReadOnlyExport() throws Exception {
        Path image = image();
        Path socket = dir.resolve("qsd-ro.sock");
        Qsd qsd = startQsd(image, socket, false);
        try (FrontendVm vm = new FrontendVm(socket)) {
            assertEquals(IMAGE_BYTES / 512, vm.blk.capacitySectors());
            assertTrue(vm.blk.isReadOnly());
            byte[] data = new byte[4096];
            vm.blk.readBytes(0, data, 0, data.length);
            BlkIoException refused = assertThrows(BlkIoException.class, () -> vm.blk.writeBytes(0, data, 0, data.length));
            // refused by the device (qsd), not by the driver: VIRTIO 1.2 §5.2.6.1 says IOERR for a write to a read-only device
            assertEquals(BlkRequestLayout.VIRTIO_BLK_S_IOERR, refused.status());
        } finally {
            qsd.close();
        }
    }

    @Test
    void shouldFailTheDeviceWhenQemuStorageDaemonDies() throws Exception {
        Path image = image();
        Path socket = dir.resolve("qsd-kill.sock");
        Qsd qsd = startQsd(image, socket, true);
        try (FrontendVm vm = new FrontendVm(socket)) {
            byte[] data = new byte[4096];
            vm.blk.writeBytes(0, data, 0, data.length);
            List<CompletableFuture<Void>> inFlight = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                inFlight.add(vm.blk.writeAsync(i * 512L, FrontendVm.BUFFERS_GPA, 256 << 10));
            }
            qsd.kill();
            CompletableFuture<Void> all = CompletableFuture.allOf(inFlight.toArray(CompletableFuture[]::new));
            try {
                all.get(10, TimeUnit.SECONDS); // some may have completed before the kill; none may hang
            } catch (ExecutionException e) {
                assertTrue(e.getCause() instanceof IOException, "failed with " + e.getCause());
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (!vm.transport.isBroken() && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertTrue(vm.transport.isBroken(), "transport not broken after the backend died");
            assertThrows(IOException.class, () -> vm.blk.writeBytes(0, data, 0, data.length));
            assertTrue(vm.blk.isFailed());
        } finally {
            qsd.close();
        }
    }

    @Test
    void shouldWriteAndReadBackThroughAirlockBackend() throws Exception {
        Path image = image();
        Path socket = dir.resolve("airlock.sock");
        VhostUserBackend backend = VhostUserBackend.serve(socket, () -> BlkBackendMain.openBlk(image));
        try (FrontendVm vm = new FrontendVm(socket)) {
            roundTrip(vm.blk, image);
            assertFalse(vm.transport.isBroken());
            // 512 requests: a lost call notification would cost a 100 ms idle wait each
            assertTrue(vm.blk.missedWakeups() < 10, "missed wake-ups: " + vm.blk.missedWakeups());
        } finally {
            backend.close();
        }
    }

    @Test
    void shouldResetAndInitialiseAgain() throws Exception {
        Path image = image();
        Path socket = dir.resolve("qsd-reset.sock");
        Qsd qsd = startQsd(image, socket, true);
        try (FrontendVm vm = new FrontendVm(socket)) {
            byte[] data = new byte[CHUNK_BYTES];
            new Random(7).nextBytes(data);
            vm.blk.writeBytes(CHUNK_BYTES, data, 0, data.length);
            vm.blk.recover(); // reset (GET_VRING_BASE on every ring), then initialise again from ring index 0
            byte[] back = new byte[CHUNK_BYTES];
            vm.blk.readBytes(CHUNK_BYTES, back, 0, back.length);
            assertArrayEquals(data, back);
            assertFalse(vm.transport.isBroken());
        } finally {
            qsd.close();
        }
    }

    @Test
    void rejectsConnectingToNothing() {
        try (SharedMemory shared = SharedMemory.create("unused", 1 << 20)) {
            assertThrows(TransportException.class, () -> VhostUserDriverTransport.connect(
                    dir.resolve("none.sock"), BlkDevice.DEVICE_ID, BLK_CONFIG_LENGTH, shared, SHARED_GPA, Duration.ofSeconds(1)));
        }
    }

    static Stream<Arguments> badHandshakeReplies() {
        int features = VhostUserRequest.GET_FEATURES;
        byte[] ok = ScriptedBackend.u64(ScriptedBackend.FEATURES);
        return Stream.of(
                Arguments.of("REPLY flag missing", ScriptedBackend.reply(features, 1, ok)),
                Arguments.of("version 2", ScriptedBackend.reply(features, 2 | 4, ok)),
                Arguments.of("unknown flag bits", ScriptedBackend.reply(features, 1 | 4 | 0x100, ok)),
                Arguments.of("another request's reply", ScriptedBackend.reply(VhostUserRequest.GET_PROTOCOL_FEATURES, 5, ok)),
                Arguments.of("short payload", ScriptedBackend.reply(features, 5, new byte[4])),
                Arguments.of("long payload", ScriptedBackend.reply(features, 5, new byte[16])),
                Arguments.of("huge size", ScriptedBackend.reply(features, 5, new byte[0])),
                Arguments.of("no reply", new byte[0]),
                Arguments.of("connection closed", null));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badHandshakeReplies")
    void rejectsBadHandshakeReply(String what, byte[] reply) throws Exception {
        byte[] sent = reply;
        if ("huge size".equals(what)) {
            sent = ScriptedBackend.reply(VhostUserRequest.GET_FEATURES, 5, new byte[0]);
            java.nio.ByteBuffer.wrap(sent).order(java.nio.ByteOrder.nativeOrder()).putInt(8, -1);
        }
        Path socket = dir.resolve("hostile.sock");
        try (ScriptedBackend backend = new ScriptedBackend(socket, VhostUserRequest.GET_FEATURES, sent);
             SharedMemory shared = SharedMemory.create("hostile", 1 << 20)) {
            long start = System.nanoTime();
            assertThrows(TransportException.class, () -> VhostUserDriverTransport.connect(
                    socket, BlkDevice.DEVICE_ID, BLK_CONFIG_LENGTH, shared, SHARED_GPA, Duration.ofMillis(500)));
            assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(5), "took too long");
        }
    }

    @Test
    void rejectsBadConfigReplyAndBreaksTheTransport() throws Exception {
        Path socket = dir.resolve("hostile-config.sock");
        byte[] config = new byte[12 + BLK_CONFIG_LENGTH];
        java.nio.ByteBuffer.wrap(config).order(java.nio.ByteOrder.nativeOrder()).putInt(0, 8); // offset 8, not 0
        byte[] bad = ScriptedBackend.reply(VhostUserRequest.GET_CONFIG, 5, config);
        try (ScriptedBackend backend = new ScriptedBackend(socket, VhostUserRequest.GET_CONFIG, bad);
             SharedMemory shared = SharedMemory.create("hostile", 1 << 20)) {
            VhostUserDriverTransport transport = VhostUserDriverTransport.connect(socket, BlkDevice.DEVICE_ID,
                    BLK_CONFIG_LENGTH, shared, SHARED_GPA, Duration.ofMillis(500));
            AtomicBoolean heard = new AtomicBoolean();
            transport.setListener(new DriverTransport.Listener() {
                @Override
                public void onUsedBuffers() {
                }

                @Override
                public void onConfigChange() {
                }

                @Override
                public void onBroken() {
                    heard.set(true);
                }
            });
            assertThrows(TransportException.class, () -> transport.readConfig(0, 4));
            assertTrue(transport.isBroken());
            assertTrue(heard.get());
            assertThrows(TransportException.class, transport::configGeneration);
            transport.close();
        }
    }

    @Test
    void rejectsSilenceWithoutReplyAckWithoutHanging() throws Exception {
        Path socket = dir.resolve("hostile-noack.sock");
        long configOnly = 1L << VhostUserRequest.PROTOCOL_F_CONFIG;
        // GET_FEATURES #1 is the handshake, #2 the sync after SET_MEM_TABLE, #3 the sync after FEATURES_OK
        try (ScriptedBackend backend = new ScriptedBackend(socket, configOnly, VhostUserRequest.GET_FEATURES, 3, new byte[0]);
             SharedMemory shared = SharedMemory.create("hostile", 1 << 20)) {
            VhostUserDriverTransport transport = VhostUserDriverTransport.connect(socket, BlkDevice.DEVICE_ID,
                    BLK_CONFIG_LENGTH, shared, SHARED_GPA, Duration.ofMillis(300));
            transport.writeStatus(1);
            transport.writeStatus(1 | 2);
            transport.writeDriverFeatures(1L << 32);
            assertThrows(TransportException.class, () -> transport.writeStatus(1 | 2 | 8));
            assertTrue(transport.isBroken());
            transport.close();
        }
    }

    @Test
    void rejectsSilenceAfterTheHandshakeWithoutHanging() throws Exception {
        Path socket = dir.resolve("hostile-silent.sock");
        try (ScriptedBackend backend = new ScriptedBackend(socket, VhostUserRequest.SET_FEATURES, new byte[0]);
             SharedMemory shared = SharedMemory.create("hostile", 1 << 20)) {
            VhostUserDriverTransport transport = VhostUserDriverTransport.connect(socket, BlkDevice.DEVICE_ID,
                    BLK_CONFIG_LENGTH, shared, SHARED_GPA, Duration.ofMillis(300));
            transport.writeDriverFeatures(1L << 32);
            assertThrows(TransportException.class, () -> transport.writeStatus(1 | 2 | 8));
            assertTrue(transport.isBroken());
            transport.close();
        }
    }
}
