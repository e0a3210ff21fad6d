package dev.airlock.transport;

import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.VirtioFeatures;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The conformance suite: every test runs on every transport (in-process runtime). */
class TransportConformanceTest {
    private static final long VERSION_1 = VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_VERSION_1);
    private static final long RING_FEATURES = VERSION_1 | VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_EVENT_IDX)
            | VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_INDIRECT_DESC);

    private final TransportWorld world = new TransportWorld();

    @AfterEach
    void close() {
        world.close();
    }

    private TransportWorld.Echo echo(TransportKind kind) {
        return world.echo(kind, world.guest("guest1", Duration.ofSeconds(2)), 0);
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldDiscoverTheDevice(TransportKind kind) {
        TransportWorld.Echo echo = echo(kind);
        DriverTransport t = echo.transport();
        assertEquals(kind, t.kind());
        assertEquals(EchoDevice.DEVICE_ID, t.probe());
        assertEquals(EchoDevice.FEATURES, t.deviceFeatures());
        assertEquals(0, t.status());
        assertEquals(EchoDevice.MAX_QUEUE_SIZE, t.queueNumMax(0));
        assertEquals(0, t.queueNumMax(1), "a queue that does not exist has QueueNumMax 0");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldNegotiateFeaturesAndRefuseUnacceptableOnes(TransportKind kind) {
        TransportWorld.Echo echo = echo(kind);
        VirtioFrontend fe = echo.frontend();
        long unoffered = VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_RING_PACKED);
        long negotiated = fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES | unoffered | VirtioFeatures.bit(EchoDevice.ECHO_F_UPPER), 16);
        assertEquals(RING_FEATURES | VirtioFeatures.bit(EchoDevice.ECHO_F_UPPER), negotiated, "only offered features are accepted");

        TransportException notOffered = assertThrows(TransportException.class,
                () -> fe.initializeExactly(EchoDevice.DEVICE_ID, RING_FEATURES | unoffered, 16));
        assertTrue(notOffered.getMessage().contains("refused features"), notOffered.getMessage());
        assertEquals(0, fe.status() & DeviceStatus.FEATURES_OK, "FEATURES_OK did not stick");
        assertTrue((fe.status() & DeviceStatus.FAILED) != 0, "the driver gave up with FAILED");

        long both = RING_FEATURES | VirtioFeatures.of(EchoDevice.ECHO_F_UPPER, EchoDevice.ECHO_F_LOWER);
        assertThrows(TransportException.class, () -> fe.initializeExactly(EchoDevice.DEVICE_ID, both, 16),
                "the device refuses the combination");

        assertEquals(VERSION_1, fe.initialize(EchoDevice.DEVICE_ID, VERSION_1, 16), "a reset clears FAILED; initialisation works again");
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK,
                world.deviceHost.deviceStatus(echo.guest().id(), 0));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldSetUpQueuesInsideTheSharedRegion(TransportKind kind) {
        TransportWorld.Echo echo = echo(kind);
        VirtioFrontend fe = echo.frontend();
        fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 1024);
        assertEquals(1, fe.queueCount());
        assertEquals(EchoDevice.MAX_QUEUE_SIZE, fe.queue(0).size(), "capped at QueueNumMax");
        long base = echo.region().secondaryGpaBase();
        for (long addr : new long[] {fe.queue(0).descAddr(), fe.queue(0).availAddr(), fe.queue(0).usedAddr()}) {
            assertTrue(addr >= base + echo.transport().dmaOffset() && addr < base + TransportWorld.REGION_BYTES,
                    "ring at 0x" + Long.toHexString(addr) + " is a shared-region address past the header");
        }
        assertEquals(1, echo.device().activations.get());
        assertFalse(echo.transport().enableQueue(0, 16, fe.queue(0).descAddr(), fe.queue(0).availAddr(), fe.queue(0).usedAddr()),
                "a ready queue cannot be set up again");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldEchoOneHundredThousandRequestsIntactSeed1(TransportKind kind) throws InterruptedException {
        TransportWorld.Echo echo = echo(kind);
        echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 256);
        int requests = 100_000;
        long elapsedNs = echo.driver().run(requests, 64, 512, 1);
        System.out.printf("%s: %d echo requests (64 in flight, 1..512 B) in %d ms: %.2f us/request%n",
                kind, requests, elapsedNs / 1_000_000, elapsedNs / 1000.0 / requests);
        assertEquals(0, world.deviceHost.internalErrors());
        assertEquals(0, world.deviceHost.faultCount(echo.guest().id(), 0));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldMeasureOneRequestRoundTrips(TransportKind kind) throws InterruptedException {
        TransportWorld.Echo echo = echo(kind);
        echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        EchoDriver driver = echo.driver();
        driver.run(2000, 1, 64, 2); // warm-up
        int requests = 5000;
        long elapsedNs = driver.run(requests, 1, 64, 3);
        System.out.printf("%s: one request in flight, 1..64 B: %.1f us round trip%n", kind, elapsedNs / 1000.0 / requests);
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldReadAndWriteConfigAcrossAGenerationChange(TransportKind kind) throws InterruptedException {
        TransportWorld.Echo echo = echo(kind);
        VirtioFrontend fe = echo.frontend();
        CountDownLatch changed = new CountDownLatch(1);
        fe.setListener(new VirtioFrontend.Listener() {
            @Override
            public void onUsedBuffers() {
            }

            @Override
            public void onConfigChange() {
                changed.countDown();
            }
        });
        fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);

        fe.writeConfig(EchoDevice.TAG_OFFSET, 4, 0xcafe_f00dL);
        assertEquals(0xcafe_f00dL, readConfig(fe, EchoDevice.TAG_OFFSET, 4));
        assertEquals(0x0dL, echo.transport().readConfig(EchoDevice.TAG_OFFSET, 1), "byte access, little-endian");

        int before = echo.transport().configGeneration();
        echo.device().setLabel(0x1122_3344_5566_7788L);
        assertTrue(changed.await(5, TimeUnit.SECONDS), "configuration change notification");
        assertNotEquals(before, echo.transport().configGeneration(), "the generation changed");
        assertEquals(0x1122_3344_5566_7788L, readConfig(fe, EchoDevice.LABEL_OFFSET, 8));
        assertEquals(1, readConfig(fe, EchoDevice.EPOCH_OFFSET, 4));

        assertThrows(TransportException.class, () -> fe.writeConfig(EchoDevice.LABEL_OFFSET, 4, 1), "read-only field");
        assertThrows(TransportException.class, () -> fe.readConfig(EchoDevice.CONFIG_SIZE, new byte[4]), "past the end");
        assertEquals(0, fe.status() & DeviceStatus.DEVICE_NEEDS_RESET, "refused accesses do not break the device");
    }

    private static long readConfig(VirtioFrontend fe, int offset, int length) {
        byte[] bytes = new byte[8];
        byte[] field = new byte[length];
        fe.readConfig(offset, field);
        System.arraycopy(field, 0, bytes, 0, length);
        return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldResetAndReinitialise(TransportKind kind) throws InterruptedException {
        TransportWorld.Echo echo = echo(kind);
        VirtioFrontend fe = echo.frontend();
        fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        echo.driver().run(1000, 16, 256, 4);
        long poolUsedBefore = fe.pool().stats().usedSlots();

        fe.reset();
        assertEquals(0, world.deviceHost.deviceStatus(echo.guest().id(), 0));
        assertEquals(1, echo.device().resets.get(), "the model was reset");
        assertEquals(0, fe.pool().stats().usedSlots(), "the rings went back to the pool (" + poolUsedBefore + " slots before)");

        fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES & ~VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_EVENT_IDX), 32);
        echo.driver().run(1000, 16, 256, 5);
        assertEquals(2, echo.device().activations.get());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldResetTheDeviceWhenTheDriverVmIsGone(TransportKind kind) throws InterruptedException {
        TransportWorld.Echo echo = echo(kind);
        echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        echo.driver().run(100, 4, 64, 6);
        world.hypervisor.destroyVm(echo.guest().id());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (echo.device().resets.get() == 0 && System.nanoTime() < deadline) {
            Thread.sleep(2);
        }
        assertEquals(1, echo.device().resets.get(), "PEER_GONE reset the device");
        assertEquals(0, world.deviceHost.deviceStatus(echo.guest().id(), 0));
        assertTrue(world.hostRunning());
        assertEquals(0, world.deviceHost.internalErrors());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldBreakTheDriverWhenTheDeviceVmIsGone(TransportKind kind) throws InterruptedException {
        TransportWorld.Echo echo = echo(kind);
        CountDownLatch broken = new CountDownLatch(1);
        echo.transport().setListener(new DriverTransport.Listener() {
            @Override
            public void onUsedBuffers() {
            }

            @Override
            public void onConfigChange() {
            }

            @Override
            public void onBroken() {
                broken.countDown();
            }
        });
        echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        world.hypervisor.destroyVm(world.hostId);
        assertTrue(broken.await(5, TimeUnit.SECONDS), "PEER_GONE broke the transport");
        assertTrue(echo.transport().isBroken());
        assertThrows(TransportException.class, () -> echo.frontend().status());
        echo.frontend().close(); // frees nothing in the revoked region, throws nothing
        assertEquals(0, echo.guest().driverHost().internalErrors());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldWakeTheDriverWithItsQueuesBrokenWhenTheDeviceVmIsGone(TransportKind kind) throws InterruptedException {
        TransportWorld.Echo echo = echo(kind);
        VirtioFrontend fe = echo.frontend();
        fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        CountDownLatch woken = new CountDownLatch(1);
        fe.setListener(() -> { // only onUsedBuffers: onBroken's default calls it, after breaking the queues
            if (fe.queue(0).isBroken()) {
                woken.countDown();
            }
        });
        world.hypervisor.destroyVm(world.hostId);
        assertTrue(woken.await(5, TimeUnit.SECONDS), "a driver parked waiting for used buffers is woken");
        assertEquals("transport", fe.queue(0).fault().field());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldFailTheDeviceInsteadOfHangingWhenNoAnswerComes(TransportKind kind) {
        TransportWorld.Guest guest = world.guest("guest1", Duration.ofMillis(200));
        TransportWorld.Echo echo = world.echo(kind, guest, 0);
        echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        world.hypervisor.stopVm(world.hostId);
        long start = System.nanoTime();
        TransportException e = assertThrows(TransportException.class, () -> echo.frontend().writeConfig(EchoDevice.TAG_OFFSET, 4, 7));
        long waitedMs = (System.nanoTime() - start) / 1_000_000;
        assertTrue(e.getMessage().contains("no answer"), e.getMessage());
        assertTrue(waitedMs >= 150 && waitedMs < 2000, "bounded wait: " + waitedMs + " ms");
        assertTrue(echo.transport().isBroken());
        assertThrows(TransportException.class, () -> echo.transport().status(), "broken stays broken");
        world.hypervisor.startVm(world.hostId);
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldServeSeveralDevicesOverOnePairConcurrently(TransportKind kind) throws Exception {
        TransportWorld.Guest guest = world.guest("guest1", Duration.ofSeconds(2));
        TransportWorld.Echo first = world.echo(kind, guest, 0);
        TransportWorld.Echo second = world.echo(kind == TransportKind.MSGQ_MMIO ? TransportKind.SHMEM_DOORBELL : TransportKind.MSGQ_MMIO,
                guest, 5);
        first.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        second.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        // The two drivers use disjoint halves of the guest's RAM.
        EchoDriver a = new EchoDriver(first.frontend(), guest.ram(), 0);
        EchoDriver b = new EchoDriver(second.frontend(), guest.ram().asSlice(TransportWorld.GUEST_RAM / 2), TransportWorld.GUEST_RAM / 2);
        Thread other = Thread.ofPlatform().start(() -> {
            try {
                b.run(20_000, 32, 256, 8);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        a.run(20_000, 32, 256, 7);
        other.join(30_000);
        assertFalse(other.isAlive());
        assertEquals(0, world.deviceHost.faultCount(guest.id(), 0));
        assertEquals(0, world.deviceHost.faultCount(guest.id(), 5));
    }
}
