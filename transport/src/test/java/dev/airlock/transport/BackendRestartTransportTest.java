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
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import static dev.airlock.transport.MultiProcessTransportTest.airlockThreads;
import static dev.airlock.transport.MultiProcessTransportTest.awaitTrue;
import static dev.airlock.transport.MultiProcessTransportTest.openFds;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The backend process of a pair killed and replaced while the secondary (this JVM, with the daemon)
 * keeps its driver: the same {@link VirtioFrontend} fails fast while the backend is detached and
 * works again, re-initialised, against the replacement ({@link EchoBackendMain} child JVMs).
 */
@Timeout(40)
class BackendRestartTransportTest {
    private static final long RING_FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1,
            VirtioFeatures.VIRTIO_F_EVENT_IDX, VirtioFeatures.VIRTIO_F_INDIRECT_DESC);
    private static final long GUEST_RAM = 4L << 20;
    private static final int OPERATIONAL = DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK
            | DeviceStatus.DRIVER_OK;
    /** Far above what detaching takes, so a call that ends well before it was not timed out. */
    private static final Duration TIMEOUT = Duration.ofSeconds(5);

    @TempDir
    Path dir;
    private List<String> baselineFds;
    private HypervisorDaemon daemon;
    private RemoteHypervisor hypervisor;
    private VmId hostId;
    private VmId guestId;
    private SharedRegionInfo region;
    private final List<BackendProcess> backends = new ArrayList<>();
    private RemoteVmContext guest;
    private DriverHost driverHost;
    private DriverTransport transport;
    private VirtioFrontend frontend;

    @BeforeEach
    void recordBaseline() {
        baselineFds = openFds();
    }

    @AfterEach
    void closeAndCheckForLeaks() {
        try {
            if (frontend != null) {
                frontend.close();
            }
        } catch (RuntimeException ignored) {
            // a detached device refuses the reset; close frees the queues all the same
        }
        if (driverHost != null) {
            driverHost.close();
        }
        if (guest != null) {
            guest.close();
        }
        backends.forEach(BackendProcess::close);
        if (hypervisor != null) {
            hypervisor.close();
        }
        if (daemon != null) {
            daemon.close();
        }
        awaitTrue(() -> openFds().size() <= baselineFds.size(), () -> "fds leaked: " + openFds() + " vs " + baselineFds);
        awaitTrue(() -> airlockThreads().isEmpty(), () -> "threads leaked: " + airlockThreads());
    }

    private void start(TransportKind kind) {
        daemon = HypervisorDaemon.start(dir.resolve("d.sock"), HypervisorConfig.DEFAULT);
        hypervisor = RemoteHypervisor.connect(daemon.socketPath(), daemon.controlCredential());
        hostId = hypervisor.createVm(VmSpec.primary("host", 1L << 20));
        guestId = hypervisor.createVm(VmSpec.secondary("guest1", GUEST_RAM));
        Credential credential = hypervisor.assignBackend(hostId, guestId);
        region = hypervisor.createSharedRegion(hostId, guestId, "guest1.echo0", 2L << 20, 0x1_0000_0000L, 0x8000_0000L);
        hypervisor.connectMessageQueues(hostId, guestId, 64);
        hypervisor.connectDoorbells(hostId, guestId);
        BackendProcess first = backend(kind, credential, "backend-1.log");
        guest = RemoteVmContext.attach(daemon.socketPath(), hypervisor.credential(guestId));
        hypervisor.startVm(hostId);
        hypervisor.startVm(guestId);
        assertTrue(guest.awaitState(VmState.RUNNING, Duration.ofSeconds(10)), "the secondary runs");
        ready(first);
        awaitTrue(() -> guest.sharedRegions().stream().anyMatch(m -> m.id().equals(region.id())),
                () -> "the secondary has no region: " + guest.sharedRegions());
        driverHost = new DriverHost(guest, TIMEOUT);
        transport = driverHost.open(kind, region.id(), 0);
        frontend = new VirtioFrontend(transport, guest.addressSpace());
    }

    private BackendProcess backend(TransportKind kind, Credential credential, String log) {
        return backend(kind, credential, "serve", log);
    }

    private BackendProcess backend(TransportKind kind, Credential credential, String mode, String log) {
        BackendProcess backend = BackendProcess.start(daemon.socketPath(), credential, mode,
                List.of(new BackendProcess.Device(kind, NotificationMode.DOORBELL, 0, region)), dir.resolve(log));
        backends.add(backend);
        return backend;
    }

    private static void ready(BackendProcess backend) {
        String ready = backend.readLine();
        assertTrue(ready != null && ready.startsWith("READY"), () -> "backend not ready: " + ready + "\n" + backend.log());
    }

    /** A driver for the frontend as it is now; it becomes the frontend's listener. */
    private EchoDriver driver() {
        return new EchoDriver(frontend, guest.addressSpace().translate(0, GUEST_RAM), 0);
    }

    /** Replaces the dead backend: a fresh credential, a new child, the same transport usable again. */
    private BackendProcess replace(TransportKind kind, String mode, String log) {
        assertTrue(transport.isDetached(), "detached before the replacement");
        AtomicInteger reattached = new AtomicInteger();
        frontend.setListener(new VirtioFrontend.Listener() {
            @Override
            public void onUsedBuffers() {
            }

            @Override
            public void onReattached() {
                reattached.incrementAndGet();
            }
        });
        Credential credential = hypervisor.assignBackend(hostId, guestId);
        BackendProcess replacement = backend(kind, credential, mode, log);
        awaitTrue(() -> !transport.isDetached(), () -> "BACKEND_ATTACHED did not reach the driver\n" + replacement.log());
        awaitTrue(() -> reattached.get() == 1, () -> "the listener heard no onReattached");
        assertFalse(transport.isBroken());
        return replacement;
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldFailFastWhenTheBackendIsKilledAndRecoverTheSameFrontendWithANewBackend(TransportKind kind) throws Exception {
        start(kind);
        frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        long ringSlots = frontend.pool().stats().usedSlots();
        EchoDriver driver = driver();
        driver.run(1000, 16, 256, 30);

        // 1. kill -9 mid-stream: the driver's requests fail quickly, nothing is revoked
        AtomicReference<Throwable> trafficEnd = new AtomicReference<>();
        CountDownLatch running = new CountDownLatch(1);
        Thread traffic = Thread.ofPlatform().name("echo-traffic").start(() -> {
            running.countDown();
            try {
                driver.run(100_000_000, 32, 256, 31);
                trafficEnd.set(new AssertionError("all requests completed: the backend was not killed"));
            } catch (Throwable t) {
                trafficEnd.set(t);
            }
        });
        running.await();
        Thread.sleep(100);
        backends.getFirst().kill();
        long killed = System.nanoTime();
        traffic.join(TIMEOUT.toMillis() * 2);
        assertFalse(traffic.isAlive(), "the driver did not hang");
        long stoppedMs = (System.nanoTime() - killed) / 1_000_000;
        System.out.printf("backend restart %s: traffic stopped %d ms after kill -9 with %s%n", kind, stoppedMs, trafficEnd.get());
        assertTrue(stoppedMs < 2000, "BACKEND_DETACHED woke the driver, not its " + TIMEOUT + " timeout: " + stoppedMs + " ms");
        Throwable end = trafficEnd.get();
        assertTrue(end instanceof TransportException || end instanceof AssertionError && end.getMessage().startsWith("queue broken"),
                () -> "the driver failed cleanly: " + end);
        awaitTrue(transport::isDetached, () -> "BACKEND_DETACHED detached the transport");
        assertFalse(transport.isBroken(), "detached, not broken");
        assertTrue(frontend.queue(0).isBroken(), "the queue stops taking and returning requests");
        long failStart = System.nanoTime();
        TransportException gone = assertThrows(TransportException.class, () -> frontend.initialize(EchoDevice.DEVICE_ID,
                RING_FEATURES, 64), "re-initialising before a new backend attaches fails");
        assertTrue(gone.getMessage().contains("backend is gone"), gone.getMessage());
        assertTrue(System.nanoTime() - failStart < TIMEOUT.toNanos() / 5, "it fails fast");
        assertEquals(0, frontend.queueCount(), "the failed initialise freed the old queues");
        assertEquals(0, frontend.pool().stats().usedSlots(), "and every bounce slot: rings and in-flight buffers");
        assertTrue(hypervisor.listSharedRegions().stream().anyMatch(r -> r.id().equals(region.id())), "the region is kept");

        // 2. a replacement: the same frontend, re-initialised at once, while the new backend's host has no device yet
        long replacing = System.nanoTime();
        BackendProcess second = replace(kind, "serve-late", "backend-2.log");
        assertEquals("HOST", second.readLine(), "the new backend's host runs; its device comes 300 ms later");
        long attached = System.nanoTime();
        frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        System.out.printf("backend restart %s: attached %d ms after the assignment, initialised %d ms after its host ran%n", kind,
                (attached - replacing) / 1_000_000, (System.nanoTime() - attached) / 1_000_000);
        ready(second);
        assertEquals(ringSlots, frontend.pool().stats().usedSlots(), "only the new rings hold bounce slots");
        assertEquals(RefusalReason.CONFLICT, assertThrows(HypervisorRefusedException.class,
                () -> hypervisor.assignBackend(hostId, guestId)).reason(), "no second backend while one is alive");
        driver().run(10_000, 32, 512, 32);
        checkBackend(second);

        // 3. a handshake in flight when the backend dies fails at once too
        second.signal("STOP");
        awaitTrue(() -> stopped(second.pid()), () -> "the backend did not stop");
        AtomicReference<Throwable> callEnd = new AtomicReference<>();
        Thread call = Thread.ofPlatform().name("config-write").start(() -> {
            try {
                frontend.writeConfig(EchoDevice.TAG_OFFSET, 4, 0x1234);
                callEnd.set(new AssertionError("a stopped backend answered"));
            } catch (Throwable t) {
                callEnd.set(t);
            }
        });
        Thread.sleep(200); // the write is waiting for the stopped backend
        assertTrue(call.isAlive(), () -> "the write waits for the device, but ended with " + callEnd.get());
        second.kill();
        killed = System.nanoTime();
        call.join(TIMEOUT.toMillis() * 2);
        long callMs = (System.nanoTime() - killed) / 1_000_000;
        assertFalse(call.isAlive());
        assertTrue(callEnd.get() instanceof TransportException e && e.getMessage().contains("backend"), () -> "" + callEnd.get());
        assertTrue(callMs < 2000, "the waiting write failed " + callMs + " ms after the kill, not at its timeout");

        BackendProcess third = replace(kind, "serve", "backend-3.log");
        ready(third); // this time the device is ready before the driver re-initialises
        frontend.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        assertEquals(ringSlots, frontend.pool().stats().usedSlots());
        driver().run(10_000, 32, 512, 33);
        checkBackend(third);
        assertEquals(0, driverHost.internalErrors());
        assertEquals(VmState.RUNNING, guest.state());
    }

    /** Whether every thread of a process is stopped by a signal (state T in /proc/PID/task/TID/stat). */
    private static boolean stopped(long pid) {
        try (var tasks = java.nio.file.Files.list(Path.of("/proc/" + pid + "/task"))) {
            return tasks.allMatch(task -> {
                try {
                    String stat = java.nio.file.Files.readString(task.resolve("stat"));
                    return stat.substring(stat.lastIndexOf(')') + 2).startsWith("T");
                } catch (java.io.IOException e) {
                    return true; // the thread ended
                }
            });
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** The replacement's device: operational, activated once, no faults, no internal errors. */
    private static void checkBackend(BackendProcess backend) {
        long[] stats = backend.stats(0);
        assertEquals(OPERATIONAL, stats[0], "the new backend's device is operational");
        assertEquals(1, stats[2], "activated once");
        assertEquals(0, stats[3], "no device faults: " + backend.command("fault"));
        assertEquals(0, stats[5], "no internal errors");
    }
}
