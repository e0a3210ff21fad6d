package dev.airlock.transport;

import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDriver;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Devices in {@link NotificationMode#POLLING} on the in-process runtime, on every transport: a
 * polling driver against a polled device moves data intact without a single kick; the poller stops
 * with a reset, with the driver's VM and with the host, and comes back with the next DRIVER_OK; an
 * idle poller parks; the model is never called by two threads at once.
 */
@Timeout(120)
class PollingModeTest {
    private static final long RING_FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1,
            VirtioFeatures.VIRTIO_F_EVENT_IDX, VirtioFeatures.VIRTIO_F_INDIRECT_DESC);
    private static final long NO_EVENT_IDX = RING_FEATURES & ~VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_EVENT_IDX);

    private TransportWorld world = new TransportWorld();

    @AfterEach
    void close() {
        world.close();
        assertEquals(List.of(), pollerThreads(), "closing the host stops every poller");
    }

    static List<Thread> pollerThreads() {
        return Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive)
                .filter(t -> t.getName().startsWith(QueuePoller.THREAD_NAME_PREFIX)).toList();
    }

    private static List<String> pollerNames() {
        return pollerThreads().stream().map(Thread::getName).sorted().toList();
    }

    private TransportWorld.Echo polled(TransportKind kind, EchoDevice device) {
        return world.echo(kind, world.guest("guest1", Duration.ofSeconds(2)), 0, NotificationMode.POLLING, device);
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldEchoOneHundredThousandRequestsIntactWithoutAKick(TransportKind kind) {
        TransportWorld.Echo echo = polled(kind, new EchoDevice());
        VirtioFrontend fe = echo.frontend();
        fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 256);
        assertEquals(List.of("airlock-poll-host/guest1.echo0.slot0"), pollerNames(), "one poller, named after the device");
        PollingEchoDriver driver = new PollingEchoDriver(fe, echo.guest().ram(), 0);
        int requests = 100_000;
        long elapsedNs = driver.run(requests, 64, 512, 1);
        System.out.printf("polled %s: %d echo requests (64 in flight, 1..512 B) in %d ms: %.2f us/request, %d kicks, %d interrupts%n",
                kind, requests, elapsedNs / 1_000_000, elapsedNs / 1000.0 / requests, driver.kicks, driver.interrupts.get());
        assertEquals(0, driver.kicks, "avail_event parked behind nextAvail: the driver never kicked");

        fe.initialize(EchoDevice.DEVICE_ID, NO_EVENT_IDX, 64);
        PollingEchoDriver flags = new PollingEchoDriver(fe, echo.guest().ram(), 0);
        flags.run(20_000, 32, 256, 2);
        assertEquals(0, flags.kicks, "VIRTQ_USED_F_NO_NOTIFY: the driver never kicked");
        assertEquals(0, world.deviceHost.faultCount(echo.guest().id(), 0));
        assertEquals(0, world.deviceHost.internalErrors());
        assertEquals(0, echo.device().overlaps.get(), "the model was called by one thread at a time");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldServeAModelThatReenablesNotifications(TransportKind kind) {
        EchoDevice device = new EchoDevice(true);
        TransportWorld.Echo echo = polled(kind, device);
        for (long features : new long[] {RING_FEATURES, NO_EVENT_IDX}) {
            echo.frontend().initialize(EchoDevice.DEVICE_ID, features, 64);
            PollingEchoDriver driver = new PollingEchoDriver(echo.frontend(), echo.guest().ram(), 0);
            driver.run(20_000, 32, 256, 3);
            System.out.printf("polled %s, model re-enabling notifications, %s: %d kicks in 20000 requests%n", kind,
                    VirtioFeatures.describe(features), driver.kicks);
        }
        assertEquals(0, world.deviceHost.faultCount(echo.guest().id(), 0));
        assertEquals(0, device.overlaps.get());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldStopThePollerOnResetAndStartItAgain(TransportKind kind) {
        TransportWorld.Echo echo = polled(kind, new EchoDevice());
        VirtioFrontend fe = echo.frontend();
        fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 64);
        new PollingEchoDriver(fe, echo.guest().ram(), 0).run(5_000, 16, 256, 4);
        List<Thread> first = pollerThreads();
        assertEquals(1, first.size());

        fe.reset();
        assertFalse(first.getFirst().isAlive(), "the reset joined the poller before the device answered");
        assertEquals(List.of(), pollerThreads());
        assertEquals(0, world.deviceHost.deviceStatus(echo.guest().id(), 0));
        assertEquals(1, echo.device().resets.get());

        // Resets with requests in flight and the poller busy with them.
        for (int round = 0; round < 20; round++) {
            fe.initialize(EchoDevice.DEVICE_ID, round % 2 == 0 ? RING_FEATURES : NO_EVENT_IDX, 32);
            addRequests(fe.queue(0), echo, 16);
            fe.reset();
            assertEquals(List.of(), pollerThreads(), "round " + round);
        }

        fe.initialize(EchoDevice.DEVICE_ID, NO_EVENT_IDX, 32);
        List<Thread> second = pollerThreads();
        assertEquals(1, second.size(), "DRIVER_OK started a new poller");
        assertNotSame(first.getFirst(), second.getFirst());
        new PollingEchoDriver(fe, echo.guest().ram(), 0).run(5_000, 16, 256, 5);
        assertEquals(22, echo.device().activations.get());
        assertEquals(21, echo.device().resets.get());
        assertEquals(0, world.deviceHost.faultCount(echo.guest().id(), 0));
        assertEquals(0, echo.device().overlaps.get());
    }

    private static void addRequests(VirtqueueDriver<Integer> q, TransportWorld.Echo echo, int count) {
        ScatterGather sg = new ScatterGather(2);
        for (int i = 0; i < count; i++) {
            long out = 2L * i * EchoDriver.MAX_LENGTH;
            echo.guest().ram().set(ValueLayout.JAVA_BYTE, out, (byte) i);
            assertTrue(q.add(sg.clear().out(out, 100).in(out + EchoDriver.MAX_LENGTH, 100), i));
        }
        assertFalse(echo.frontend().kick(0), "suppressed");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldNeverCallTheModelFromTwoThreadsAtOnce(TransportKind kind) throws InterruptedException {
        TransportWorld.Echo echo = polled(kind, new EchoDevice());
        VirtioFrontend fe = echo.frontend();
        fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 256);
        PollingEchoDriver driver = new PollingEchoDriver(fe, echo.guest().ram(), 0);
        java.util.concurrent.atomic.AtomicReference<Throwable> failure = new java.util.concurrent.atomic.AtomicReference<>();
        Thread traffic = Thread.ofPlatform().name("polled-traffic").start(() -> {
            try {
                driver.run(30_000, 64, 512, 14);
            } catch (Throwable t) {
                failure.set(t);
            }
        });
        int writes = 0;
        while (traffic.isAlive()) { // config writes reach the model on the interrupt thread while the poller serves the queue
            fe.writeConfig(EchoDevice.TAG_OFFSET, 4, writes++);
        }
        traffic.join();
        if (failure.get() != null) {
            throw new AssertionError("traffic failed", failure.get());
        }
        System.out.printf("polled %s: %d config writes during 30000 requests%n", kind, writes);
        assertTrue(writes > 10, "the writes overlapped the traffic: " + writes);
        assertEquals(0, echo.device().overlaps.get(), "the interrupt thread and the poller took turns");
        assertEquals(0, world.deviceHost.faultCount(echo.guest().id(), 0));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldStopThePollerWhenTheDriverVmIsGone(TransportKind kind) throws InterruptedException {
        TransportWorld.Echo echo = polled(kind, new EchoDevice());
        echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        new PollingEchoDriver(echo.frontend(), echo.guest().ram(), 0).run(1_000, 8, 64, 6);
        world.hypervisor.destroyVm(echo.guest().id());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while ((echo.device().resets.get() == 0 || !pollerThreads().isEmpty()) && System.nanoTime() < deadline) {
            Thread.sleep(2);
        }
        assertEquals(1, echo.device().resets.get(), "PEER_GONE reset the device");
        assertEquals(List.of(), pollerThreads(), "and stopped its poller");
        assertTrue(world.hostRunning());
        assertEquals(0, world.deviceHost.internalErrors());
    }

    @Test
    void shouldLeaveNoPollerThreadAfterClose() {
        TransportWorld.Guest guest1 = world.guest("guest1", Duration.ofSeconds(2));
        TransportWorld.Guest guest2 = world.guest("guest2", Duration.ofSeconds(2));
        List<TransportWorld.Echo> echoes = List.of(
                world.echo(TransportKind.MSGQ_MMIO, guest1, 0, NotificationMode.POLLING, new EchoDevice()),
                world.echo(TransportKind.SHMEM_DOORBELL, guest1, 1, NotificationMode.POLLING, new EchoDevice()),
                world.echo(TransportKind.MSGQ_MMIO, guest1, 2, NotificationMode.DOORBELL, new EchoDevice()),
                world.echo(TransportKind.SHMEM_DOORBELL, guest2, 0, NotificationMode.POLLING, new EchoDevice()));
        assertEquals(List.of(), pollerThreads(), "no poller before DRIVER_OK");
        for (TransportWorld.Echo echo : echoes) {
            echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 32);
        }
        assertEquals(List.of("airlock-poll-host/guest1.echo0.slot0", "airlock-poll-host/guest1.echo1.slot1",
                "airlock-poll-host/guest2.echo0.slot0"), pollerNames());
        long half = TransportWorld.GUEST_RAM / 2;
        new PollingEchoDriver(echoes.get(0).frontend(), guest1.ram(), 0).run(2_000, 8, 256, 7);
        new PollingEchoDriver(echoes.get(1).frontend(), guest1.ram().asSlice(half), half).run(2_000, 8, 256, 8);
        new PollingEchoDriver(echoes.get(3).frontend(), guest2.ram(), 0).run(2_000, 8, 256, 9);

        world.deviceHost.close();
        assertEquals(List.of(), pollerThreads(), "close joined every poller");
        for (TransportWorld.Echo echo : echoes) {
            echo.transport().close(); // nobody answers any more: the frontends' close must not wait for a reset
            assertEquals(1, echo.device().resets.get());
            assertEquals(0, echo.device().overlaps.get());
        }
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldParkWhenIdleAndStillServeTheNextRequest(TransportKind kind) throws InterruptedException {
        world.close();
        world = new TransportWorld(new PollingPolicy(Duration.ofMillis(1), Duration.ofNanos(10_000), Duration.ofMillis(2)));
        TransportWorld.Echo echo = polled(kind, new EchoDevice());
        echo.frontend().initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        PollingEchoDriver driver = new PollingEchoDriver(echo.frontend(), echo.guest().ram(), 0);
        driver.run(1_000, 4, 64, 10);
        Thread poller = pollerThreads().getFirst();
        Thread.sleep(50); // well past the 1 ms spin

        // A spinning thread is RUNNABLE in every sample; a parked one is TIMED_WAITING but for its short passes.
        int parked = 0;
        for (int i = 0; i < 100; i++) {
            if (poller.getState() == Thread.State.TIMED_WAITING) {
                parked++;
            }
            Thread.sleep(2);
        }
        System.out.printf("polled %s, idle: parked in %d of 100 samples%n", kind, parked);
        assertTrue(parked >= 80, "an idle poller parks: " + parked + " of 100 samples");

        long firstNs = driver.run(1, 1, 64, 11);
        assertTrue(firstNs < TimeUnit.MILLISECONDS.toNanos(500), "the first request after idling: " + firstNs / 1000 + " us");
        driver.run(1_000, 1, 64, 12);
        assertEquals(0, driver.kicks);
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void rejectsACorruptAvailIdxAndRecoversAfterAReset(TransportKind kind) throws InterruptedException {
        TransportWorld.Echo echo = polled(kind, new EchoDevice());
        VirtioFrontend fe = echo.frontend();
        fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        // The avail idx jumps 1000 ahead of a 16-entry queue: the poller sees it move, the model's pop refuses it.
        long availIdxGpa = fe.queue(0).availAddr() + 2;
        echo.guest().vm().addressSpace().translate(availIdxGpa, 2).set(ValueLayout.JAVA_SHORT_UNALIGNED, 0, (short) 1000);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while ((fe.status() & DeviceStatus.DEVICE_NEEDS_RESET) == 0 && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertTrue((fe.status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0, "the device needs a reset");
        assertEquals("avail.idx", world.deviceHost.lastFault(echo.guest().id(), 0).field());
        assertEquals(1, pollerThreads().size(), "the poller lives on, skipping the broken queue");
        fe.initialize(EchoDevice.DEVICE_ID, RING_FEATURES, 16);
        new PollingEchoDriver(fe, echo.guest().ram(), 0).run(1_000, 8, 128, 13);
        assertEquals(0, world.deviceHost.internalErrors());
    }

    @Test
    void rejectsPoliciesThatCannotWork() {
        assertThrows(IllegalArgumentException.class, () -> new PollingPolicy(Duration.ofNanos(-1), Duration.ofNanos(1), Duration.ofNanos(1)));
        assertThrows(IllegalArgumentException.class, () -> new PollingPolicy(Duration.ZERO, Duration.ZERO, Duration.ofNanos(1)));
        assertThrows(IllegalArgumentException.class, () -> new PollingPolicy(Duration.ZERO, Duration.ofNanos(10), Duration.ofNanos(5)));
        assertThrows(IllegalArgumentException.class, () -> new PollingPolicy(Duration.ZERO, Duration.ofNanos(1), Duration.ofHours(1)));
        assertEquals(Duration.ofMillis(1), PollingPolicy.DEFAULT.maxPark());
    }
}
