package dev.airlock.transport;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.VirtioFeatures;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.LongSupplier;

import static dev.airlock.transport.MmioMessageLayout.TYPE_READ;
import static dev.airlock.transport.MmioMessageLayout.TYPE_WRITE;
import static dev.airlock.transport.TransportStatus.BAD_OFFSET;
import static dev.airlock.transport.TransportStatus.BAD_SIZE;
import static dev.airlock.transport.TransportStatus.MALFORMED;
import static dev.airlock.transport.TransportStatus.NO_SUCH_SLOT;
import static dev.airlock.transport.TransportStatus.OK;
import static dev.airlock.transport.TransportStatus.READ_ONLY;
import static dev.airlock.transport.TransportStatus.REJECTED;
import static dev.airlock.transport.TransportStatus.WRITE_ONLY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A hostile secondary sends malformed messages, bad registers, bad header requests and bad rings
 * while a well-behaved secondary runs echo traffic against the same device host. The bad accesses
 * are refused, the good traffic completes intact, and nothing escapes to the interrupt thread.
 */
class HostileInputTest {
    private static final long RING_FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1,
            VirtioFeatures.VIRTIO_F_EVENT_IDX, VirtioFeatures.VIRTIO_F_INDIRECT_DESC);

    private final TransportWorld world = new TransportWorld();
    private final AtomicReference<Throwable> goodFailure = new AtomicReference<>();
    private Thread goodTraffic;

    @BeforeEach
    void startGoodTraffic() {
        TransportWorld.Guest good = world.guest("good", Duration.ofSeconds(2));
        TransportWorld.Echo echo = world.echo(TransportKind.MSGQ_MMIO, good, 0);
        TransportWorld.Echo echo2 = world.echo(TransportKind.SHMEM_DOORBELL, good, 1);
        echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        echo2.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        EchoDriver a = echo.driver();
        EchoDriver b = new EchoDriver(echo2.frontend(), good.ram().asSlice(TransportWorld.GUEST_RAM / 2), TransportWorld.GUEST_RAM / 2);
        goodTraffic = Thread.ofPlatform().name("good-traffic").start(() -> {
            try {
                for (int round = 0; round < 4; round++) {
                    a.run(5_000, 16, 256, 100 + round);
                    b.run(5_000, 16, 256, 200 + round);
                }
            } catch (Throwable t) {
                goodFailure.set(t);
            }
        });
    }

    @AfterEach
    void checkGoodTrafficAndClose() throws InterruptedException {
        try {
            goodTraffic.join(60_000);
            assertFalse(goodTraffic.isAlive(), "good traffic finished");
            if (goodFailure.get() != null) {
                throw new AssertionError("the well-behaved VM was harmed", goodFailure.get());
            }
            assertTrue(world.hostRunning(), "the primary is alive");
            assertEquals(0, world.deviceHost.internalErrors(), "no unexpected exception in the device host");
        } finally {
            world.close();
        }
    }

    // ---- msgq-mmio: raw messages -------------------------------------------------------------

    private static byte[] request(int type, int slot, int seq, int offset, int size, int value) {
        byte[] bytes = new byte[MmioMessageLayout.REQUEST_LENGTH];
        MmioMessageLayout.encodeRequest(MemorySegment.ofArray(bytes), new MmioMessageLayout.Request(type, slot, seq, offset, size, value));
        return bytes;
    }

    /** Sends raw bytes and returns the decoded answer, or null if none comes within 300 ms. */
    private MmioMessageLayout.Response exchange(TransportWorld.Guest hostile, byte[] message) throws InterruptedException {
        VmContext vm = hostile.vm();
        vm.sendMessage(world.hostId, message);
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(300);
        while (System.nanoTime() < deadline) {
            var answer = vm.receiveMessage(world.hostId);
            if (answer.isPresent()) {
                byte[] bytes = answer.get();
                return MmioMessageLayout.decodeResponse(MemorySegment.ofArray(bytes), bytes.length, "test");
            }
            Thread.sleep(0, 100_000);
        }
        return null;
    }

    private int status(TransportWorld.Guest hostile, int type, int offset, int size, int value) throws InterruptedException {
        MmioMessageLayout.Response r = exchange(hostile, request(type, 0, 1, offset, size, value));
        assertNotNull(r, "an answer to " + type + " 0x" + Integer.toHexString(offset));
        return r.status();
    }

    private TransportWorld.Guest hostileWithRawMmioDevice() {
        TransportWorld.Guest hostile = world.guest("hostile", null);
        SharedRegionInfo region = world.region(hostile, "echo0");
        world.deviceHost.addDevice(TransportKind.MSGQ_MMIO, region, 0, new EchoDevice());
        return hostile;
    }

    @Test
    void rejectsBadRegisterOffsetsAndSizes() throws InterruptedException {
        TransportWorld.Guest hostile = hostileWithRawMmioDevice();
        assertEquals(BAD_OFFSET, status(hostile, TYPE_READ, 0x0d0, 4, 0), "a hole in the register map");
        assertEquals(BAD_OFFSET, status(hostile, TYPE_READ, 0x0c0, 4, 0), "QueueReset without RING_RESET");
        assertEquals(BAD_OFFSET, status(hostile, TYPE_READ, MmioRegisters.CONFIG_OFFSET + EchoDevice.CONFIG_SIZE, 4, 0));
        assertEquals(BAD_OFFSET, status(hostile, TYPE_WRITE, 0xffff_fff0, 4, 1), "far beyond the config space");
        assertEquals(BAD_SIZE, status(hostile, TYPE_READ, MmioRegisters.STATUS_OFFSET, 2, 0), "registers are 32-bit");
        assertEquals(READ_ONLY, status(hostile, TYPE_WRITE, MmioRegisters.MAGIC_VALUE_OFFSET, 4, 0));
        assertEquals(WRITE_ONLY, status(hostile, TYPE_READ, MmioRegisters.QUEUE_NOTIFY_OFFSET, 4, 0));
        assertEquals(MALFORMED, status(hostile, TYPE_READ, MmioRegisters.STATUS_OFFSET + 2, 4, 0), "misaligned");
        assertEquals(REJECTED, status(hostile, TYPE_WRITE, MmioRegisters.QUEUE_NUM_OFFSET, 4, 4096), "QueueNum above QueueNumMax");
        assertEquals(REJECTED, status(hostile, TYPE_WRITE, MmioRegisters.STATUS_OFFSET, 4, DeviceStatus.DRIVER_OK),
                "DRIVER_OK before ACKNOWLEDGE");
        assertEquals(REJECTED, status(hostile, TYPE_WRITE, MmioRegisters.DRIVER_FEATURES_OFFSET, 4, 1), "outside the feature window");

        MmioMessageLayout.Response magic = exchange(hostile, request(TYPE_READ, 0, 9, MmioRegisters.MAGIC_VALUE_OFFSET, 4, 0));
        assertEquals(OK, magic.status());
        assertEquals(MmioRegisters.MAGIC_VALUE, magic.value(), "the device still answers");
        assertEquals(9, magic.seq());
        assertEquals(0, world.deviceHost.deviceStatus(hostile.id(), 0), "refused accesses changed nothing");
        assertTrue(world.deviceHost.faultCount(hostile.id(), 0) >= 10, "each refusal recorded");
        assertTrue(world.deviceHost.protocolErrors() >= 1, "the misaligned message refused before any device");
    }

    @Test
    void rejectsOversizedTruncatedAndMalformedMessages() throws InterruptedException {
        TransportWorld.Guest hostile = hostileWithRawMmioDevice();
        byte[] good = request(TYPE_READ, 0, 5, MmioRegisters.DEVICE_ID_OFFSET, 4, 0);
        assertNull(exchange(hostile, new byte[] {1, 0, 5}), "too short to answer: dropped");
        assertEquals(MALFORMED, exchange(hostile, java.util.Arrays.copyOf(good, 15)).status(), "truncated");
        assertEquals(MALFORMED, exchange(hostile, java.util.Arrays.copyOf(good, 17)).status(), "one byte too long");
        assertEquals(MALFORMED, exchange(hostile, java.util.Arrays.copyOf(good, hostile.vm().maxMessageBytes())).status(), "oversized");
        assertThrows(HypervisorRefusedException.class,
                () -> hostile.vm().sendMessage(world.hostId, new byte[hostile.vm().maxMessageBytes() + 1]), "the hypervisor caps size");

        byte[] badType = good.clone();
        badType[0] = 7;
        assertEquals(MALFORMED, exchange(hostile, badType).status(), "unknown type");
        byte[] reserved = good.clone();
        reserved[10] = 1;
        assertEquals(MALFORMED, exchange(hostile, reserved).status(), "reserved byte set");
        assertEquals(MALFORMED, exchange(hostile, request(TYPE_READ, 0, 6, 0, 3, 0)).status(), "size 3");
        assertEquals(MALFORMED, exchange(hostile, request(TYPE_READ, 0, 6, 0, 4, 42)).status(), "a read with a value");
        assertEquals(NO_SUCH_SLOT, exchange(hostile, request(TYPE_READ, 3, 6, 0, 4, 0)).status(), "an empty slot");
        assertEquals(NO_SUCH_SLOT, exchange(hostile, request(TYPE_READ, 200, 6, 0, 4, 0)).status(), "a slot beyond 8");

        MmioMessageLayout.Response id = exchange(hostile, good);
        assertEquals(OK, id.status());
        assertEquals(EchoDevice.DEVICE_ID, id.value());
        assertTrue(world.deviceHost.protocolErrors() >= 10);
    }

    @Test
    void rejectsRandomMessagesSeed11() throws InterruptedException {
        TransportWorld.Guest hostile = hostileWithRawMmioDevice();
        SplittableRandom random = new SplittableRandom(11);
        VmContext vm = hostile.vm();
        for (int i = 0; i < 3000; i++) {
            byte[] message = new byte[random.nextBoolean() ? MmioMessageLayout.REQUEST_LENGTH : 1 + random.nextInt(vm.maxMessageBytes())];
            random.nextBytes(message);
            if (message.length >= 2 && random.nextBoolean()) {
                message[0] = (byte) (1 + random.nextInt(2));
                message[1] = 0;
            }
            while (vm.sendMessage(world.hostId, message) != dev.airlock.hypervisor.SendResult.OK) {
                drain(vm);
                Thread.onSpinWait();
            }
            drain(vm);
        }
        assertTrue(world.hostRunning());
    }

    private void drain(VmContext vm) {
        while (vm.receiveMessage(world.hostId).isPresent()) {
            // the answers are not checked: only that the host survives and keeps serving the good VM
        }
    }

    // ---- both transports ----------------------------------------------------------------------

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void rejectsNotificationsForQueuesThatDoNotExist(TransportKind kind) throws InterruptedException {
        TransportWorld.Guest hostile = world.guest("hostile", null);
        SharedRegionInfo region = world.region(hostile, "echo0");
        world.deviceHost.addDevice(kind, region, 0, new EchoDevice());
        long errorsBefore = world.deviceHost.protocolErrors();
        hostile.vm().ringDoorbell(world.hostId, DoorbellFlagsLayout.queueNotifyFlag(0, 5));
        awaitAtLeast(() -> world.deviceHost.faultCount(hostile.id(), 0), 1, "the notification for queue 5 is refused");
        hostile.vm().ringDoorbell(world.hostId, DoorbellFlagsLayout.queueNotifyFlag(3, 0));
        awaitAtLeast(world.deviceHost::protocolErrors, errorsBefore + 1, "flags for an empty slot are refused");
        hostile.vm().ringDoorbell(world.hostId, -1L); // every flag of every slot at once
        awaitAtLeast(world.deviceHost::protocolErrors, errorsBefore + 8, "flags for 7 empty slots refused");
        if (kind == TransportKind.MSGQ_MMIO) {
            assertEquals(REJECTED, status(hostile, TYPE_WRITE, MmioRegisters.QUEUE_NOTIFY_OFFSET, 4, 99));
        }
        assertEquals(0, world.deviceHost.deviceStatus(hostile.id(), 0) & DeviceStatus.DEVICE_NEEDS_RESET,
                "a stray notification is refused, not fatal");
    }

    private static void awaitAtLeast(LongSupplier value, long atLeast, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (value.getAsLong() < atLeast) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out: " + what + " (" + value.getAsLong() + " < " + atLeast + ")");
            }
            Thread.sleep(1);
        }
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void rejectsRingAddressesOutsideTheRegion(TransportKind kind) {
        TransportWorld.Guest hostile = world.guest("hostile", Duration.ofSeconds(2));
        TransportWorld.Echo echo = world.echo(kind, hostile, 0);
        DriverTransport t = echo.transport();
        long base = echo.region().secondaryGpaBase();
        long[][] bad = {
                {0x1000, base + 0x8000, base + 0x9000},                             // desc in the guest's private RAM
                {base + 0x8000, base + TransportWorld.REGION_BYTES - 16, base + 0x9000}, // avail runs past the end
                {base + 0x8000, base + 0x9000, 0xdead_0000_0000L},                 // used nowhere at all
                {base + 0x8008, base + 0x9000, base + 0xa000},                      // desc misaligned
        };
        for (long[] rings : bad) {
            bringToFeaturesOk(t);
            assertFalse(t.enableQueue(0, 16, rings[0], rings[1], rings[2]), "rings " + java.util.Arrays.toString(rings));
            assertTrue((t.status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0, "the device needs a reset");
            assertTrue(world.deviceHost.lastFault(hostile.id(), 0).field().startsWith("queue."),
                    String.valueOf(world.deviceHost.lastFault(hostile.id(), 0)));
        }
        if (kind == TransportKind.SHMEM_DOORBELL) {
            bringToFeaturesOk(t);
            assertFalse(t.enableQueue(0, 16, base, base + 0x9000, base + 0xa000), "rings over the header are outside the DMA view");
        }
        bringToFeaturesOk(t);
        assertFalse(t.enableQueue(0, 1024, base + 0x8000, base + 0x9000, base + 0xa000), "size above QueueNumMax");
        assertFalse(t.enableQueue(3, 16, base + 0x8000, base + 0x9000, base + 0xa000), "a queue that does not exist");
        echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        assertEquals(0, t.status() & DeviceStatus.DEVICE_NEEDS_RESET, "a reset recovers the device");
    }

    private static void bringToFeaturesOk(DriverTransport t) {
        t.writeStatus(0);
        t.writeStatus(DeviceStatus.ACKNOWLEDGE);
        t.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        t.writeDriverFeatures(VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_VERSION_1));
        t.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, t.status());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void rejectsCorruptRingsWithNeedsReset(TransportKind kind) throws InterruptedException {
        TransportWorld.Guest hostile = world.guest("hostile", Duration.ofSeconds(2));
        TransportWorld.Echo echo = world.echo(kind, hostile, 0);
        CountDownLatch configChange = new CountDownLatch(1);
        echo.frontend().setListener(new VirtioFrontend.Listener() {
            @Override
            public void onUsedBuffers() {
            }

            @Override
            public void onConfigChange() {
                configChange.countDown();
            }
        });
        echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        // The avail idx jumps 1000 ahead of a 16-entry queue (§2.7.13.3 forbids more than the queue size).
        long availIdxGpa = echo.frontend().queue(0).availAddr() + 2;
        hostile.vm().addressSpace().translate(availIdxGpa, 2).set(ValueLayout.JAVA_SHORT_UNALIGNED, 0, (short) 1000);
        echo.transport().notifyQueue(0);
        assertTrue(configChange.await(5, TimeUnit.SECONDS), "the driver is told");
        assertTrue((echo.frontend().status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0);
        assertEquals("avail.idx", world.deviceHost.lastFault(hostile.id(), 0).field());
        echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        echo.driver().run(500, 8, 128, 12);
    }

    // ---- shmem-doorbell: raw header --------------------------------------------------------------

    @Test
    void rejectsRandomHeaderRequestsSeed7() throws InterruptedException {
        TransportWorld.Guest hostile = world.guest("hostile", null);
        SharedRegionInfo region = world.region(hostile, "echo0");
        world.deviceHost.addDevice(TransportKind.SHMEM_DOORBELL, region, 0, new EchoDevice());
        MemorySegment header = hostile.vm().sharedRegions().getFirst().region().segment();
        SplittableRandom random = new SplittableRandom(7);
        int seq = 0;
        int refused = 0;
        for (int i = 0; i < 2000; i++) {
            // Scribble over device-owned fields too: the device never reads them back.
            header.set(ValueLayout.JAVA_INT, ShmemHeaderLayout.STATUS_OFFSET, random.nextInt());
            header.set(ValueLayout.JAVA_INT, ShmemHeaderLayout.OP_OFFSET, random.nextInt(7));
            header.set(ValueLayout.JAVA_INT, ShmemHeaderLayout.ARG0_OFFSET, random.nextInt(4) == 0 ? random.nextInt() : random.nextInt(8));
            header.set(ValueLayout.JAVA_INT, ShmemHeaderLayout.ARG1_OFFSET, random.nextInt(4) == 0 ? random.nextInt() : 1 << random.nextInt(10));
            header.set(ValueLayout.JAVA_LONG, ShmemHeaderLayout.ARG2_OFFSET, random.nextBoolean() ? random.nextLong() : random.nextInt(16));
            header.set(ValueLayout.JAVA_LONG, ShmemHeaderLayout.ARG3_OFFSET, random.nextBoolean() ? random.nextLong() : 0);
            header.set(ValueLayout.JAVA_LONG, ShmemHeaderLayout.ARG4_OFFSET, random.nextBoolean() ? random.nextLong() : 0);
            seq++;
            ShmemHeaderLayout.setIntRelease(header, ShmemHeaderLayout.REQUEST_SEQ_OFFSET, seq);
            hostile.vm().ringDoorbell(world.hostId, DoorbellFlagsLayout.flag(0, DoorbellFlagsLayout.CONTROL_BIT)
                    | (random.nextInt(4) == 0 ? random.nextLong() & 0x7f : 0));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
            while (ShmemHeaderLayout.getIntAcquire(header, ShmemHeaderLayout.ACK_SEQ_OFFSET) != seq) {
                assertTrue(System.nanoTime() < deadline, "request " + seq + " acknowledged");
                Thread.onSpinWait();
            }
            int result = ShmemHeaderLayout.getInt(header, ShmemHeaderLayout.RESULT_OFFSET);
            assertTrue(result >= OK && result <= MALFORMED, "a status code: " + result);
            if (result != OK) {
                refused++;
            }
        }
        assertTrue(refused > 1000, "most random requests are refused: " + refused);
        assertEquals(ShmemHeaderLayout.MAGIC, header.get(ValueLayout.JAVA_INT, ShmemHeaderLayout.MAGIC_OFFSET));
        assertEquals(world.deviceHost.deviceStatus(hostile.id(), 0),
                ShmemHeaderLayout.getIntAcquire(header, ShmemHeaderLayout.STATUS_OFFSET), "status republished");
    }
}
