package dev.airlock.transport;

import dev.airlock.hypervisor.HypervisorConfig;
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
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The conformance suite on the multi-process runtime: the daemon runs in this JVM, which is also the
 * secondary (driver side); the device is an {@link EchoDevice} served by a backend of the primary in
 * a child JVM ({@link EchoBackendMain}). Every test runs on every transport.
 */
@Timeout(30)
class MultiProcessTransportTest {
    private static final long VERSION_1 = VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_VERSION_1);
    private static final long RING_FEATURES = VERSION_1 | VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_EVENT_IDX)
            | VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_INDIRECT_DESC);
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
    private VmId guestId;
    private SharedRegionInfo region;
    private BackendProcess backend;
    private RemoteVmContext guest;
    private DriverHost driverHost;
    private DriverTransport transport;
    private VirtioFrontend frontend;

    @BeforeEach
    void recordBaseline() {
        baselineFds = openFds();
    }

    /** Daemon here, backend child serving the echo device, this JVM attached as the secondary with the driver side open. */
    private void start(TransportKind kind) {
        start(kind, NotificationMode.DOORBELL);
    }

    private void start(TransportKind kind, NotificationMode mode) {
        daemon = HypervisorDaemon.start(dir.resolve("d.sock"), HypervisorConfig.DEFAULT);
        hypervisor = RemoteHypervisor.connect(daemon.socketPath(), daemon.controlCredential());
        hostId = hypervisor.createVm(VmSpec.primary("host", 1L << 20));
        guestId = hypervisor.createVm(VmSpec.secondary("guest1", GUEST_RAM));
        Credential backendCredential = hypervisor.assignBackend(hostId, guestId);
        region = hypervisor.createSharedRegion(hostId, guestId, "guest1.echo0", REGION_BYTES, HOST_REGION_BASE, GUEST_REGION_BASE);
        hypervisor.connectMessageQueues(hostId, guestId, 64);
        hypervisor.connectDoorbells(hostId, guestId);
        backend = BackendProcess.start(daemon.socketPath(), backendCredential, false,
                List.of(new BackendProcess.Device(kind, mode, 0, region)), dir.resolve("backend.log"));
        guest = RemoteVmContext.attach(daemon.socketPath(), hypervisor.credential(guestId));
        hypervisor.startVm(hostId);
        hypervisor.startVm(guestId);
        assertTrue(guest.awaitState(VmState.RUNNING, Duration.ofSeconds(10)), "the secondary runs");
        String ready = backend.readLine();
        assertTrue(ready != null && ready.startsWith("READY"), () -> "backend not ready: " + ready + "\n" + backend.log());
        awaitTrue(() -> guest.peers().contains(hostId) && guest.sharedRegions().stream().anyMatch(m -> m.id().equals(region.id())),
                () -> "the secondary is not linked: " + guest.peers() + " " + guest.sharedRegions());
        driverHost = new DriverHost(guest, Duration.ofSeconds(2));
        transport = driverHost.open(kind, region.id(), 0);
        frontend = new VirtioFrontend(transport, guest.addressSpace());
    }

    @AfterEach
    void closeAndCheckForLeaks() {
        try {
            if (frontend != null) {
                frontend.close();
            }
        } catch (RuntimeException ignored) {
            // a broken device may refuse the reset; close frees what it can
        }
        if (driverHost != null) {
            driverHost.close();
        }
        if (guest != null) {
            guest.close();
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

    private MemorySegment ram() {
        return guest.addressSpace().translate(0, GUEST_RAM);
    }

    private EchoDriver driver() {
        return new EchoDriver(frontend, ram(), 0);
    }

    /** The backend's view: status, resets, activations, faults, protocol errors, internal errors. */
    private long[] backendStats() {
        return backend.stats(0);
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldDiscoverNegotiateAndSetUpQueues(TransportKind kind) {
        start(kind);
        assertEquals(kind, transport.kind());
        assertEquals(EchoDevice.DEVICE_ID, transport.probe());
        assertEquals(EchoDevice.FEATURES, transport.deviceFeatures());
        assertEquals(0, transport.status());
        assertEquals(EchoDevice.MAX_QUEUE_SIZE, transport.queueNumMax(0));
        assertEquals(0, transport.queueNumMax(1), "a queue that does not exist has QueueNumMax 0");

        long unoffered = VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_RING_PACKED);
        TransportException notOffered = assertThrows(TransportException.class,
                () -> frontend.initializeExactly(EchoDevice.DEVICE_ID, RING_FEATURES | unoffered, 16));
        assertTrue(notOffered.getMessage().contains("refused features"), notOffered.getMessage());
        assertTrue((frontend.status() & DeviceStatus.FAILED) != 0, "the driver gave up with FAILED");
        long both = RING_FEATURES | VirtioFeatures.of(EchoDevice.ECHO_F_UPPER, EchoDevice.ECHO_F_LOWER);
        assertThrows(TransportException.class, () -> frontend.initializeExactly(EchoDevice.DEVICE_ID, both, 16),
                "the device refuses the combination");

        long upper = VirtioFeatures.bit(EchoDevice.ECHO_F_UPPER);
        assertEquals(RING_FEATURES | upper, frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES | unoffered | upper, 1024),
                "only offered features are accepted");
        assertEquals(1, frontend.queueCount());
        assertEquals(EchoDevice.MAX_QUEUE_SIZE, frontend.queue(0).size(), "capped at QueueNumMax");
        long base = region.secondaryGpaBase();
        for (long addr : new long[] {frontend.queue(0).descAddr(), frontend.queue(0).availAddr(), frontend.queue(0).usedAddr()}) {
            assertTrue(addr >= base + transport.dmaOffset() && addr < base + REGION_BYTES,
                    "ring at 0x" + Long.toHexString(addr) + " is a shared-region address past the header");
        }
        assertFalse(transport.enableQueue(0, 16, frontend.queue(0).descAddr(), frontend.queue(0).availAddr(),
                frontend.queue(0).usedAddr()), "a ready queue cannot be set up again");
        long[] stats = backendStats();
        assertEquals(OPERATIONAL, stats[0], "the backend sees the device operational");
        assertEquals(1, stats[2], "activated once");
        assertEquals(0, stats[5], "no internal errors in the backend");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldEchoFiftyThousandRequestsIntactAcrossProcesses(TransportKind kind) throws InterruptedException {
        start(kind);
        frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 256);
        EchoDriver driver = driver();
        int requests = 50_000;
        long elapsedNs = driver.run(requests, 64, 512, 1);
        System.out.printf("multi-process %s: %d echo requests (64 in flight, 1..512 B) in %d ms: %.2f us/request%n",
                kind, requests, elapsedNs / 1_000_000, elapsedNs / 1000.0 / requests);
        driver.run(2000, 1, 64, 2); // warm-up
        int single = 5000;
        long singleNs = driver.run(single, 1, 64, 3);
        System.out.printf("multi-process %s: one request in flight, 1..64 B: %.1f us round trip%n", kind, singleNs / 1000.0 / single);
        long[] stats = backendStats();
        assertEquals(0, stats[3], "no device faults");
        assertEquals(0, stats[4], "no protocol errors");
        assertEquals(0, stats[5], "no internal errors");
        assertEquals(0, driverHost.protocolErrors());
        assertEquals(0, driverHost.internalErrors());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldEchoOneHundredThousandRequestsWhenPolledAcrossProcesses(TransportKind kind) {
        start(kind, NotificationMode.POLLING);
        assertEquals("0", backend.command("pollers"), "no poller before DRIVER_OK");
        frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 256);
        assertEquals("1", backend.command("pollers"), "DRIVER_OK started the device's poller");
        PollingEchoDriver driver = new PollingEchoDriver(frontend, ram(), 0);
        int requests = 100_000;
        long elapsedNs = driver.run(requests, 64, 512, 21);
        System.out.printf("multi-process polled %s: %d echo requests (64 in flight, 1..512 B) in %d ms: %.2f us/request, "
                + "%d kicks, %d interrupts%n", kind, requests, elapsedNs / 1_000_000, elapsedNs / 1000.0 / requests, driver.kicks,
                driver.interrupts.get());
        assertEquals(0, driver.kicks, "the polled device suppressed every kick");

        frontend.reset(); // with the poller running
        assertEquals("0", backend.command("pollers"), "the reset stopped the poller");
        long[] stats = backendStats();
        assertEquals(0, stats[0]);
        assertEquals(1, stats[1], "the model was reset");
        frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES & ~VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_EVENT_IDX), 32);
        assertEquals("1", backend.command("pollers"));
        PollingEchoDriver again = new PollingEchoDriver(frontend, ram(), 0);
        again.run(5_000, 16, 256, 22);
        assertEquals(0, again.kicks);
        stats = backendStats();
        assertEquals(OPERATIONAL, stats[0]);
        assertEquals(2, stats[2], "activated twice");
        assertEquals(0, stats[3], "no device faults");
        assertEquals(0, stats[5], "no internal errors");
        assertEquals(0, stats[6], "the model was called by one thread at a time");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldReadAndWriteConfigAcrossAGenerationChange(TransportKind kind) throws InterruptedException {
        start(kind);
        CountDownLatch changed = new CountDownLatch(1);
        frontend.setListener(new VirtioFrontend.Listener() {
            @Override
            public void onUsedBuffers() {
            }

            @Override
            public void onConfigChange() {
                changed.countDown();
            }
        });
        frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        frontend.writeConfig(EchoDevice.TAG_OFFSET, 4, 0xcafe_f00dL);
        assertEquals(0xcafe_f00dL, readConfig(EchoDevice.TAG_OFFSET, 4));
        assertEquals(0x0dL, transport.readConfig(EchoDevice.TAG_OFFSET, 1), "byte access, little-endian");

        int before = transport.configGeneration();
        assertEquals("ok", backend.command("label 0x1122334455667788"));
        assertTrue(changed.await(5, TimeUnit.SECONDS), "configuration change notification from the other process");
        assertNotEquals(before, transport.configGeneration(), "the generation changed");
        assertEquals(0x1122_3344_5566_7788L, readConfig(EchoDevice.LABEL_OFFSET, 8));
        assertEquals(1, readConfig(EchoDevice.EPOCH_OFFSET, 4));

        assertThrows(TransportException.class, () -> frontend.writeConfig(EchoDevice.LABEL_OFFSET, 4, 1), "read-only field");
        assertThrows(TransportException.class, () -> frontend.readConfig(EchoDevice.CONFIG_SIZE, new byte[4]), "past the end");
        assertEquals(0, frontend.status() & DeviceStatus.DEVICE_NEEDS_RESET, "refused accesses do not break the device");
    }

    private long readConfig(int offset, int length) {
        byte[] bytes = new byte[8];
        byte[] field = new byte[length];
        frontend.readConfig(offset, field);
        System.arraycopy(field, 0, bytes, 0, length);
        return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldResetAndReinitialise(TransportKind kind) throws InterruptedException {
        start(kind);
        frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        driver().run(2000, 16, 256, 4);
        long poolUsedBefore = frontend.pool().stats().usedSlots();

        frontend.reset();
        long[] stats = backendStats();
        assertEquals(0, stats[0], "the backend's device status is 0");
        assertEquals(1, stats[1], "the model was reset");
        assertEquals(0, frontend.pool().stats().usedSlots(), "the rings went back to the pool (" + poolUsedBefore + " slots before)");

        frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES & ~VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_EVENT_IDX), 32);
        driver().run(2000, 16, 256, 5);
        stats = backendStats();
        assertEquals(OPERATIONAL, stats[0]);
        assertEquals(2, stats[2], "activated twice");
        assertEquals(0, stats[5], "no internal errors");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldRefuseRingsOutsideTheRegionAndWorkAfterAReset(TransportKind kind) throws InterruptedException {
        start(kind);
        long base = region.secondaryGpaBase();
        bringToFeaturesOk();
        // desc in the secondary's private RAM: the backend cannot (and must not) see it
        assertFalse(transport.enableQueue(0, 16, 0x1000, base + 0x8000, base + 0x9000));
        assertTrue((transport.status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0, "the device needs a reset");
        String fault = backend.command("fault");
        assertTrue(fault.contains("queue."), fault);
        bringToFeaturesOk();
        assertFalse(transport.enableQueue(0, 16, base + 0x8000, base + 0x9000, 0xdead_0000_0000L), "used ring nowhere at all");
        assertTrue((transport.status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0);

        frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        assertEquals(0, transport.status() & DeviceStatus.DEVICE_NEEDS_RESET, "a reset recovers the device");
        driver().run(5000, 32, 512, 9);
        long[] stats = backendStats();
        assertEquals(OPERATIONAL, stats[0]);
        assertEquals(2, stats[3], "two faults recorded");
        assertEquals(0, stats[5], "no internal errors");
    }

    private void bringToFeaturesOk() {
        transport.writeStatus(0);
        transport.writeStatus(DeviceStatus.ACKNOWLEDGE);
        transport.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        transport.writeDriverFeatures(VERSION_1);
        transport.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK, transport.status());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldFailTheDeviceCleanlyWhenTheBackendIsKilled(TransportKind kind) throws InterruptedException {
        start(kind);
        frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        EchoDriver driver = driver();
        driver.run(1000, 16, 256, 10);
        AtomicReference<Throwable> trafficEnd = new AtomicReference<>();
        CountDownLatch running = new CountDownLatch(1);
        Thread traffic = Thread.ofPlatform().name("echo-traffic").start(() -> {
            running.countDown();
            try {
                driver.run(100_000_000, 32, 256, 11);
                trafficEnd.set(new AssertionError("all requests completed: the backend was not killed"));
            } catch (Throwable t) {
                trafficEnd.set(t);
            }
        });
        running.await();
        Thread.sleep(100);
        backend.kill(); // SIGKILL, mid-traffic
        long start = System.nanoTime();
        traffic.join(15_000);
        assertFalse(traffic.isAlive(), "the driver did not hang");
        long stoppedMs = (System.nanoTime() - start) / 1_000_000;
        System.out.printf("multi-process %s: traffic stopped %d ms after kill -9 with %s%n", kind, stoppedMs, trafficEnd.get());
        assertTrue(stoppedMs < 2000, "BACKEND_DETACHED woke the driver (not its own timeout): " + stoppedMs + " ms");
        // Usually the queue is already broken when the driver looks (onBroken marks it) or a transport
        // call throws. If the driver thread was inside the queue when its PEER_GONE handler returned,
        // the runtime has unmapped the region under it: the documented IllegalStateException, never
        // a dangling access (see dev.airlock.hypervisor's package comment).
        Throwable end = trafficEnd.get();
        assertTrue(end instanceof TransportException || end instanceof AssertionError && end.getMessage().startsWith("queue broken")
                        || end instanceof IllegalStateException && "Already closed".equals(end.getMessage()),
                () -> "the driver failed cleanly: " + end);
        awaitTrue(transport::isDetached, () -> "BACKEND_DETACHED detached the transport (BackendRestartTransportTest replaces the backend)");
        assertThrows(TransportException.class, () -> frontend.status());
        assertTrue(frontend.queue(0).isBroken(), "the queue is broken too: it takes and returns nothing");
        frontend.close(); // frees nothing in the revoked region, throws nothing
        assertEquals(0, driverHost.internalErrors());
        assertEquals(VmState.RUNNING, guest.state(), "the secondary lives on");
        assertTrue(hypervisor.listVms().stream().anyMatch(v -> v.id().equals(hostId)), "the primary lives on");
        assertFalse(hypervisor.listSharedRegions().isEmpty(), "the pair's region is kept for a new backend");
    }

    // ---- helpers -------------------------------------------------------------------------------

    static List<String> openFds() {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.map(fd -> {
                try {
                    return Files.readSymbolicLink(fd).toString();
                } catch (IOException e) {
                    return "";
                }
            }).filter(t -> !t.endsWith(".jar")).toList(); // jars are opened once, on first use
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static List<String> airlockThreads() {
        return Thread.getAllStackTraces().keySet().stream().map(Thread::getName).filter(n -> n.startsWith("airlock")).toList();
    }

    static void awaitTrue(BooleanSupplier condition, Supplier<String> message) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                fail(message.get());
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }
}
