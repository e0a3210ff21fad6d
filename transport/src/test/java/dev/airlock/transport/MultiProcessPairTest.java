package dev.airlock.transport;

import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.RefusalReason;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.VmState;
import dev.airlock.hypervisor.process.Credential;
import dev.airlock.hypervisor.process.HypervisorDaemon;
import dev.airlock.hypervisor.process.RemoteHypervisor;
import dev.airlock.hypervisor.process.RemoteVmContext;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.VirtioFeatures;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static dev.airlock.transport.MmioMessageLayout.TYPE_READ;
import static dev.airlock.transport.MmioMessageLayout.TYPE_WRITE;
import static dev.airlock.transport.MultiProcessTransportTest.airlockThreads;
import static dev.airlock.transport.MultiProcessTransportTest.awaitTrue;
import static dev.airlock.transport.MultiProcessTransportTest.openFds;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The multi-process runtime with several devices and several secondaries: the daemon and the
 * drivers run in this JVM (each secondary attached through its own {@link RemoteVmContext}), the
 * devices in a child JVM ({@link EchoBackendMain}). Covers several devices per pair, raw malformed
 * messages from a hostile secondary next to a well-behaved one, and timeouts when the device
 * process stops answering.
 */
@Timeout(60)
class MultiProcessPairTest {
    private static final long RING_FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1,
            VirtioFeatures.VIRTIO_F_EVENT_IDX, VirtioFeatures.VIRTIO_F_INDIRECT_DESC);
    private static final long GUEST_RAM = 4L << 20;
    private static final long REGION_BYTES = 2L << 20;
    private static final long HOST_REGION_BASE = 0x1_0000_0000L;
    private static final long GUEST_REGION_BASE = 0x8000_0000L;
    private static final int OPERATIONAL = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK
            | DeviceStatus.DRIVER_OK;

    @TempDir
    Path dir;
    private List<String> baselineFds;
    private HypervisorDaemon daemon;
    private RemoteHypervisor hypervisor;
    private VmId hostId;
    private int regions;
    private BackendProcess backend;
    private boolean backendStopped;
    /** Closed in reverse order: frontends, driver hosts, VM contexts. */
    private final List<AutoCloseable> closeables = new ArrayList<>();

    @BeforeEach
    void recordBaseline() {
        baselineFds = openFds();
    }

    @AfterEach
    void closeAndCheckForLeaks() {
        if (backend != null && backendStopped) {
            backend.signal("CONT");
        }
        Collections.reverse(closeables);
        for (AutoCloseable c : closeables) {
            try {
                c.close();
            } catch (Exception ignored) {
                // a broken device may refuse the reset; close frees what it can
            }
        }
        if (backend != null) {
            backend.close();
        }
        if (hypervisor != null) {
            hypervisor.close();
        }
        if (daemon != null) {
            daemon.close();
        }
        awaitTrue(() -> openFds().size() <= baselineFds.size(), () -> "fds leaked: " + openFds() + " vs " + baselineFds);
        awaitTrue(() -> airlockThreads().isEmpty(), () -> "threads leaked: " + airlockThreads());
    }

    // ---- set-up ----------------------------------------------------------------------------------

    private void startDaemon(HypervisorConfig config) {
        daemon = HypervisorDaemon.start(dir.resolve("d.sock"), config);
        hypervisor = RemoteHypervisor.connect(daemon.socketPath(), daemon.controlCredential());
        hostId = hypervisor.createVm(VmSpec.primary("host", 1L << 20));
    }

    private VmId secondary(String name) {
        return hypervisor.createVm(VmSpec.secondary(name, GUEST_RAM));
    }

    /** Connects the message queues and doorbells of a pair (after any backend assignment: that must come first). */
    private void connect(VmId guest) {
        hypervisor.connectMessageQueues(hostId, guest, 64);
        hypervisor.connectDoorbells(hostId, guest);
    }

    private SharedRegionInfo region(VmId guest, String name) {
        int n = regions++;
        return hypervisor.createSharedRegion(hostId, guest, name, REGION_BYTES, HOST_REGION_BASE + n * 0x100_0000L,
                GUEST_REGION_BASE + n * 0x100_0000L);
    }

    private static BackendProcess.Device device(TransportKind kind, NotificationMode mode, int slot, SharedRegionInfo region) {
        return new BackendProcess.Device(kind, mode, slot, region);
    }

    /** Starts the device child, attaches this JVM as each guest, starts every VM, and waits until all are linked. */
    private List<RemoteVmContext> run(Credential deviceCredential, boolean silent, List<BackendProcess.Device> devices, VmId... guests) {
        backend = BackendProcess.start(daemon.socketPath(), deviceCredential, silent, devices, dir.resolve("backend.log"));
        List<RemoteVmContext> contexts = new ArrayList<>();
        for (VmId guest : guests) {
            RemoteVmContext vm = RemoteVmContext.attach(daemon.socketPath(), hypervisor.credential(guest));
            closeables.add(vm);
            contexts.add(vm);
        }
        hypervisor.startVm(hostId);
        for (VmId guest : guests) {
            hypervisor.startVm(guest);
        }
        String ready = backend.readLine();
        assertTrue(ready != null && ready.startsWith("READY"), () -> "backend not ready: " + ready + "\n" + backend.log());
        for (RemoteVmContext vm : contexts) {
            assertTrue(vm.awaitState(VmState.RUNNING, Duration.ofSeconds(10)), "the secondary runs");
            awaitTrue(() -> vm.peers().contains(hostId) && devices.stream().filter(d -> d.region().secondary().equals(vm.id()))
                            .allMatch(d -> vm.sharedRegions().stream().anyMatch(m -> m.id().equals(d.region().id()))),
                    () -> "the secondary is not linked: " + vm.peers() + " " + vm.sharedRegions());
        }
        return contexts;
    }

    private DriverHost driverHost(RemoteVmContext vm, Duration timeout) {
        DriverHost host = new DriverHost(vm, timeout);
        closeables.add(host);
        return host;
    }

    private VirtioFrontend frontend(DriverHost host, RemoteVmContext vm, BackendProcess.Device device) {
        VirtioFrontend frontend = new VirtioFrontend(host.open(device.kind(), device.region().id(), device.slot()), vm.addressSpace());
        closeables.add(frontend);
        return frontend;
    }

    private static MemorySegment ram(RemoteVmContext vm) {
        return vm.addressSpace().translate(0, GUEST_RAM);
    }

    /** Runs each task on its own thread and fails with the first failure; bounded. */
    private static void concurrently(List<Callable<?>> tasks) throws InterruptedException {
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < tasks.size(); i++) {
            Callable<?> task = tasks.get(i);
            threads.add(Thread.ofPlatform().name("echo-traffic-" + i).start(() -> {
                try {
                    task.call();
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            }));
        }
        for (Thread t : threads) {
            t.join(40_000);
            assertFalse(t.isAlive(), t.getName() + " finished");
        }
        if (failure.get() != null) {
            throw new AssertionError("traffic failed", failure.get());
        }
    }

    // ---- several devices per pair ----------------------------------------------------------------

    @Test
    void shouldServeThreeDevicesOverOnePairConcurrently() throws InterruptedException {
        startDaemon(HypervisorConfig.DEFAULT);
        VmId guestId = secondary("guest1");
        Credential backendCredential = hypervisor.assignBackend(hostId, guestId);
        connect(guestId);
        List<BackendProcess.Device> devices = List.of(
                device(TransportKind.MSGQ_MMIO, NotificationMode.DOORBELL, 0, region(guestId, "guest1.echo0")),
                device(TransportKind.SHMEM_DOORBELL, NotificationMode.DOORBELL, 1, region(guestId, "guest1.echo1")),
                device(TransportKind.MSGQ_MMIO, NotificationMode.POLLING, 2, region(guestId, "guest1.echo2")));
        RemoteVmContext guest = run(backendCredential, false, devices, guestId).getFirst();
        DriverHost host = driverHost(guest, Duration.ofSeconds(2));
        List<VirtioFrontend> frontends = new ArrayList<>();
        for (BackendProcess.Device d : devices) {
            VirtioFrontend fe = frontend(host, guest, d);
            fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
            frontends.add(fe);
        }
        long third = GUEST_RAM / 4;
        EchoDriver a = new EchoDriver(frontends.get(0), ram(guest), 0);
        EchoDriver b = new EchoDriver(frontends.get(1), ram(guest).asSlice(third), third);
        PollingEchoDriver c = new PollingEchoDriver(frontends.get(2), ram(guest).asSlice(2 * third), 2 * third);
        long start = System.nanoTime();
        concurrently(List.of(() -> a.run(15_000, 32, 256, 31), () -> b.run(15_000, 32, 256, 32), () -> c.run(15_000, 32, 256, 33)));
        System.out.printf("multi-process: 3 devices on one pair (msgq-mmio, shmem-doorbell, polled msgq-mmio), 45000 echo "
                + "requests in %d ms%n", (System.nanoTime() - start) / 1_000_000);
        assertEquals(0, c.kicks, "the polled device suppressed every kick");
        for (int i = 0; i < devices.size(); i++) {
            long[] stats = backend.stats(i);
            assertEquals(OPERATIONAL, stats[0], "device " + i + " operational");
            assertEquals(1, stats[2], "device " + i + " activated once");
            assertEquals(0, stats[3], "device " + i + ": no faults");
            assertEquals(0, stats[6], "device " + i + ": the model was called by one thread at a time");
        }
        long[] stats = backend.stats(0);
        assertEquals(0, stats[4], "no protocol errors");
        assertEquals(0, stats[5], "no internal errors");
        assertEquals("1", backend.command("pollers"));
        assertEquals(0, host.protocolErrors());
        assertEquals(0, host.internalErrors());
    }

    // ---- a hostile driver process ------------------------------------------------------------------

    private static byte[] request(int type, int slot, int seq, int offset, int size, int value) {
        byte[] bytes = new byte[MmioMessageLayout.REQUEST_LENGTH];
        MmioMessageLayout.encodeRequest(MemorySegment.ofArray(bytes), new MmioMessageLayout.Request(type, slot, seq, offset, size, value));
        return bytes;
    }

    /**
     * Sends raw bytes through the hostile VM's context and returns the answer with the message's
     * sequence number, or null if none comes within the wait (answers to earlier messages are skipped).
     */
    private MmioMessageLayout.Response exchange(RemoteVmContext hostile, byte[] message, long waitMs) throws InterruptedException {
        int seq = message.length >= 4 ? (message[2] & 0xff) | (message[3] & 0xff) << 8 : -1;
        assertEquals(dev.airlock.hypervisor.SendResult.OK, hostile.sendMessage(hostId, message));
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(waitMs);
        while (System.nanoTime() < deadline) {
            var answer = hostile.receiveMessage(hostId);
            if (answer.isPresent()) {
                byte[] bytes = answer.get();
                MmioMessageLayout.Response r = MmioMessageLayout.decodeResponse(MemorySegment.ofArray(bytes), bytes.length, "test");
                if (r.seq() == seq) {
                    return r;
                }
            } else {
                Thread.sleep(0, 200_000);
            }
        }
        return null;
    }

    /** Receives and drops answers until none has come for 300 ms. */
    private void drainQuietly(RemoteVmContext hostile) throws InterruptedException {
        long quietSinceNs = System.nanoTime();
        while (System.nanoTime() - quietSinceNs < TimeUnit.MILLISECONDS.toNanos(300)) {
            if (hostile.receiveMessage(hostId).isPresent()) {
                quietSinceNs = System.nanoTime();
            } else {
                Thread.sleep(1);
            }
        }
    }

    private int status(RemoteVmContext hostile, int type, int slot, int offset, int size, int value) throws InterruptedException {
        MmioMessageLayout.Response r = exchange(hostile, request(type, slot, 1, offset, size, value), 5_000);
        assertNotNull(r, "an answer to " + type + " 0x" + Integer.toHexString(offset));
        return r.status();
    }

    @Test
    void rejectsRawMalformedMessagesFromAHostileDriverProcess() throws Exception {
        int maxMessageBytes = 96; // not the default 240: the limit is the configured one
        startDaemon(new HypervisorConfig(maxMessageBytes));
        VmId goodId = secondary("good");
        VmId hostileId = secondary("hostile");
        connect(goodId);
        connect(hostileId);
        List<BackendProcess.Device> devices = List.of(
                device(TransportKind.MSGQ_MMIO, NotificationMode.DOORBELL, 0, region(goodId, "good.echo0")),
                device(TransportKind.MSGQ_MMIO, NotificationMode.DOORBELL, 0, region(hostileId, "hostile.echo0")),
                device(TransportKind.SHMEM_DOORBELL, NotificationMode.POLLING, 1, region(hostileId, "hostile.echo1")));
        // The primary's own process serves both secondaries from one device host.
        List<RemoteVmContext> vms = run(hypervisor.credential(hostId), false, devices, goodId, hostileId);
        RemoteVmContext good = vms.get(0);
        RemoteVmContext hostile = vms.get(1);
        assertEquals(maxMessageBytes, hostile.maxMessageBytes());

        VirtioFrontend goodFrontend = frontend(driverHost(good, Duration.ofSeconds(5)), good, devices.getFirst());
        goodFrontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        EchoDriver goodDriver = new EchoDriver(goodFrontend, ram(good), 0);
        AtomicReference<Throwable> goodFailure = new AtomicReference<>();
        Thread goodTraffic = Thread.ofPlatform().name("good-traffic").start(() -> {
            try {
                goodDriver.run(20_000, 16, 256, 41);
            } catch (Throwable t) {
                goodFailure.set(t);
            }
        });

        // Bad register offsets and sizes.
        assertEquals(TransportStatus.BAD_OFFSET, status(hostile, TYPE_READ, 0, 0x0d0, 4, 0), "a hole in the register map");
        assertEquals(TransportStatus.BAD_OFFSET, status(hostile, TYPE_READ, 0, 0x0c0, 4, 0), "QueueReset without RING_RESET");
        assertEquals(TransportStatus.BAD_OFFSET, status(hostile, TYPE_WRITE, 0, 0xffff_fff0, 4, 1), "far beyond the config space");
        assertEquals(TransportStatus.BAD_SIZE, status(hostile, TYPE_READ, 0, MmioRegisters.STATUS_OFFSET, 2, 0));
        assertEquals(TransportStatus.READ_ONLY, status(hostile, TYPE_WRITE, 0, MmioRegisters.MAGIC_VALUE_OFFSET, 4, 0));
        assertEquals(TransportStatus.WRITE_ONLY, status(hostile, TYPE_READ, 0, MmioRegisters.QUEUE_NOTIFY_OFFSET, 4, 0));
        assertEquals(TransportStatus.NO_SUCH_SLOT, status(hostile, TYPE_READ, 5, 0, 4, 0), "an empty slot");
        assertEquals(TransportStatus.NO_SUCH_SLOT, status(hostile, TYPE_READ, 1, 0, 4, 0), "a shmem-doorbell device takes no messages");

        // Truncated, oversized and malformed messages.
        byte[] deviceId = request(TYPE_READ, 0, 7, MmioRegisters.DEVICE_ID_OFFSET, 4, 0);
        assertNull(exchange(hostile, new byte[] {1, 0, 7}, 300), "too short to answer: dropped");
        assertEquals(TransportStatus.MALFORMED, exchange(hostile, Arrays.copyOf(deviceId, 15), 5_000).status(), "truncated");
        assertEquals(TransportStatus.MALFORMED, exchange(hostile, Arrays.copyOf(deviceId, 17), 5_000).status(), "one byte too long");
        assertEquals(TransportStatus.MALFORMED, exchange(hostile, Arrays.copyOf(deviceId, maxMessageBytes), 5_000).status(),
                "as long as the hypervisor allows");
        HypervisorRefusedException tooLarge = assertThrows(HypervisorRefusedException.class,
                () -> hostile.sendMessage(hostId, new byte[maxMessageBytes + 1]), "the hypervisor caps the size");
        assertEquals(RefusalReason.MESSAGE_TOO_LARGE, tooLarge.reason());
        byte[] badType = deviceId.clone();
        badType[0] = 9;
        assertEquals(TransportStatus.MALFORMED, exchange(hostile, badType, 5_000).status(), "unknown type");
        byte[] reserved = deviceId.clone();
        reserved[9] = 1;
        assertEquals(TransportStatus.MALFORMED, exchange(hostile, reserved, 5_000).status(), "reserved byte set");
        assertEquals(TransportStatus.MALFORMED, status(hostile, TYPE_READ, 0, MmioRegisters.STATUS_OFFSET + 2, 4, 0), "misaligned");

        // Notifications for queues that do not exist, and for empty slots.
        long faultsBefore = backend.stats(1)[3];
        assertEquals(TransportStatus.REJECTED, status(hostile, TYPE_WRITE, 0, MmioRegisters.QUEUE_NOTIFY_OFFSET, 4, 99));
        hostile.ringDoorbell(hostId, DoorbellFlagsLayout.queueNotifyFlag(0, 5));
        hostile.ringDoorbell(hostId, DoorbellFlagsLayout.queueNotifyFlag(1, 6));
        hostile.ringDoorbell(hostId, DoorbellFlagsLayout.queueNotifyFlag(4, 0));
        hostile.ringDoorbell(hostId, -1L);
        awaitTrue(() -> backend.stats(1)[3] >= faultsBefore + 3, () -> "notifications for queues 99 and 5 refused: " + backend.stats(1)[3]);
        awaitTrue(() -> backend.stats(2)[3] >= 1, () -> "the notification for queue 6 of the shmem-doorbell device refused");

        // Ring addresses outside the region, set up register by register.
        long base = devices.get(1).region().secondaryGpaBase();
        int[][] setUp = {
                {MmioRegisters.STATUS_OFFSET, 0}, {MmioRegisters.STATUS_OFFSET, DeviceStatus.ACKNOWLEDGE},
                {MmioRegisters.STATUS_OFFSET, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER},
                {MmioRegisters.DRIVER_FEATURES_SEL_OFFSET, 1}, {MmioRegisters.DRIVER_FEATURES_OFFSET, 1}, // VERSION_1 is bit 32
                {MmioRegisters.STATUS_OFFSET, DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK},
                {MmioRegisters.QUEUE_SEL_OFFSET, 0}, {MmioRegisters.QUEUE_NUM_OFFSET, 16},
                {MmioRegisters.QUEUE_DESC_LOW_OFFSET, 0x1000}, {MmioRegisters.QUEUE_DESC_HIGH_OFFSET, 0}, // the guest's private RAM
                {MmioRegisters.QUEUE_DRIVER_LOW_OFFSET, (int) (base + 0x8000)}, {MmioRegisters.QUEUE_DRIVER_HIGH_OFFSET, (int) (base >>> 32)},
                {MmioRegisters.QUEUE_DEVICE_LOW_OFFSET, (int) (base + 0x9000)}, {MmioRegisters.QUEUE_DEVICE_HIGH_OFFSET, (int) (base >>> 32)}};
        for (int[] w : setUp) {
            assertEquals(TransportStatus.OK, status(hostile, TYPE_WRITE, 0, w[0], 4, w[1]), "register 0x" + Integer.toHexString(w[0]));
        }
        assertEquals(TransportStatus.REJECTED, status(hostile, TYPE_WRITE, 0, MmioRegisters.QUEUE_READY_OFFSET, 4, 1));
        MmioMessageLayout.Response deviceStatus = exchange(hostile, request(TYPE_READ, 0, 8, MmioRegisters.STATUS_OFFSET, 4, 0), 5_000);
        assertTrue((deviceStatus.value() & DeviceStatus.DEVICE_NEEDS_RESET) != 0, "the hostile VM's device needs a reset");
        assertTrue(backend.command("fault 1").contains("queue.desc"), backend.command("fault 1"));

        // Garbage, as fast as the queue takes it.
        SplittableRandom random = new SplittableRandom(42);
        for (int i = 0; i < 500; i++) {
            byte[] message = new byte[random.nextBoolean() ? MmioMessageLayout.REQUEST_LENGTH : 1 + random.nextInt(maxMessageBytes)];
            random.nextBytes(message);
            if (message.length >= 2 && random.nextBoolean()) {
                message[0] = (byte) (1 + random.nextInt(2));
                message[1] = (byte) random.nextInt(3);
            }
            while (hostile.sendMessage(hostId, message) != dev.airlock.hypervisor.SendResult.OK) {
                while (hostile.receiveMessage(hostId).isPresent()) {
                    // the answers are not checked: only that the host survives and keeps serving the good VM
                }
            }
        }

        drainQuietly(hostile);
        MmioMessageLayout.Response id = exchange(hostile, request(TYPE_READ, 0, 0xbeef, MmioRegisters.DEVICE_ID_OFFSET, 4, 0), 5_000);
        assertEquals(TransportStatus.OK, id.status(), "the hostile VM's device still answers");
        assertEquals(EchoDevice.DEVICE_ID, id.value());
        goodTraffic.join(40_000);
        assertFalse(goodTraffic.isAlive(), "good traffic finished");
        if (goodFailure.get() != null) {
            throw new AssertionError("the well-behaved VM was harmed", goodFailure.get());
        }
        long[] goodStats = backend.stats(0);
        assertEquals(OPERATIONAL, goodStats[0], "the good VM's device is operational");
        assertEquals(0, goodStats[3], "and recorded no fault");
        assertTrue(goodStats[4] >= 10, "malformed messages and stray flags refused before any device: " + goodStats[4]);
        assertEquals(0, goodStats[5], "no internal errors in the device process");
        assertEquals(OPERATIONAL, goodFrontend.status());
    }

    // ---- timeouts ----------------------------------------------------------------------------------

    /** Runs {@code call}, which must fail with a TransportException saying "no answer" after about {@code timeout}. */
    private static void assertTimesOut(Duration timeout, Runnable call, String what) {
        long start = System.nanoTime();
        TransportException e = assertThrows(TransportException.class, call::run, what);
        long waitedMs = (System.nanoTime() - start) / 1_000_000;
        System.out.printf("multi-process: %s failed after %d ms: %s%n", what, waitedMs, e.getMessage());
        assertTrue(e.getMessage().contains("no answer"), e.getMessage());
        assertTrue(waitedMs >= timeout.toMillis() - 50 && waitedMs < timeout.toMillis() + 3_000, "bounded wait: " + waitedMs + " ms");
    }

    @Test
    void shouldTimeOutWhileTheDeviceProcessIsStoppedAndServeOtherDevicesAfterwards() throws InterruptedException {
        startDaemon(HypervisorConfig.DEFAULT);
        VmId guestId = secondary("guest1");
        Credential backendCredential = hypervisor.assignBackend(hostId, guestId);
        connect(guestId);
        List<BackendProcess.Device> devices = List.of(
                device(TransportKind.MSGQ_MMIO, NotificationMode.DOORBELL, 0, region(guestId, "guest1.echo0")),
                device(TransportKind.SHMEM_DOORBELL, NotificationMode.DOORBELL, 1, region(guestId, "guest1.echo1")),
                device(TransportKind.SHMEM_DOORBELL, NotificationMode.DOORBELL, 2, region(guestId, "guest1.echo2")));
        RemoteVmContext guest = run(backendCredential, false, devices, guestId).getFirst();
        Duration timeout = Duration.ofMillis(500);
        DriverHost host = driverHost(guest, timeout);
        List<VirtioFrontend> frontends = new ArrayList<>();
        long third = GUEST_RAM / 4;
        for (int i = 0; i < devices.size(); i++) {
            VirtioFrontend fe = frontend(host, guest, devices.get(i));
            fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 32);
            new EchoDriver(fe, ram(guest).asSlice(i * third), i * third).run(1_000, 8, 128, 50 + i);
            frontends.add(fe);
        }

        backend.signal("STOP");
        backendStopped = true;
        assertTimesOut(timeout, () -> frontends.get(0).writeConfig(EchoDevice.TAG_OFFSET, 4, 7), "msgq-mmio config write");
        assertTimesOut(timeout, () -> frontends.get(1).writeConfig(EchoDevice.TAG_OFFSET, 4, 7), "shmem-doorbell config write");
        assertTrue(frontends.get(0).transport().isBroken() && frontends.get(1).transport().isBroken(), "timed-out transports break");
        assertThrows(TransportException.class, () -> frontends.get(0).status(), "broken stays broken");
        assertFalse(frontends.get(2).transport().isBroken(), "a timeout breaks only its own device");
        backend.signal("CONT");
        backendStopped = false;

        new EchoDriver(frontends.get(2), ram(guest).asSlice(2 * third), 2 * third).run(5_000, 16, 256, 60);
        for (int i = 0; i < 2; i++) {
            frontends.get(i).close(); // the slot can be opened again; the device gets a reset from the new driver
            VirtioFrontend again = frontend(host, guest, devices.get(i));
            again.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 32);
            new EchoDriver(again, ram(guest).asSlice(i * third), i * third).run(2_000, 16, 256, 61 + i);
        }
        for (int i = 0; i < devices.size(); i++) {
            long[] stats = backend.stats(i);
            assertEquals(OPERATIONAL, stats[0], "device " + i);
            assertEquals(0, stats[3], "device " + i + ": no faults");
        }
        assertEquals(0, backend.stats(0)[5], "no internal errors in the device process");
        assertEquals(0, host.internalErrors());
    }

    @Test
    void shouldTimeOutWhenNoProcessServesTheDevices() {
        startDaemon(HypervisorConfig.DEFAULT);
        VmId guestId = secondary("guest1");
        Credential backendCredential = hypervisor.assignBackend(hostId, guestId);
        connect(guestId);
        List<BackendProcess.Device> devices = List.of(
                device(TransportKind.MSGQ_MMIO, NotificationMode.DOORBELL, 0, region(guestId, "guest1.echo0")),
                device(TransportKind.SHMEM_DOORBELL, NotificationMode.DOORBELL, 1, region(guestId, "guest1.echo1")));
        RemoteVmContext guest = run(backendCredential, true, devices, guestId).getFirst();
        Duration timeout = Duration.ofMillis(300);
        DriverHost host = driverHost(guest, timeout);
        VirtioFrontend mmio = frontend(host, guest, devices.get(0));
        VirtioFrontend shmem = frontend(host, guest, devices.get(1));
        assertTimesOut(timeout, () -> mmio.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16), "msgq-mmio initialisation");
        TransportException noHeader = assertThrows(TransportException.class, () -> shmem.transport().probe());
        assertTrue(noHeader.getMessage().contains("no shmem-doorbell header"), noHeader.getMessage());
        assertTimesOut(timeout, () -> shmem.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16), "shmem-doorbell initialisation");
        assertTrue(mmio.transport().isBroken() && shmem.transport().isBroken());
        assertEquals(0, host.internalErrors());
        assertEquals(VmState.RUNNING, guest.state(), "the secondary lives on");
    }
}
