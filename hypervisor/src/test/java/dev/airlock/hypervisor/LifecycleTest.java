package dev.airlock.hypervisor;

import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import static dev.airlock.hypervisor.TestSupport.RAM;
import static dev.airlock.hypervisor.TestSupport.Recorder;
import static dev.airlock.hypervisor.TestSupport.World;
import static dev.airlock.hypervisor.TestSupport.await;
import static dev.airlock.hypervisor.TestSupport.openFdCount;
import static dev.airlock.hypervisor.TestSupport.vmThreads;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LifecycleTest {
    private static final Duration WAIT = Duration.ofSeconds(5);

    @Test
    void shouldListVmsWithRolesAndStates() {
        try (World world = new World()) {
            world.hypervisor.startVm(world.hostId);
            world.hypervisor.startVm(world.guest1Id);
            world.hypervisor.stopVm(world.guest1Id);
            assertEquals(List.of(
                    new VmInfo(world.hostId, "host", VmRole.PRIMARY, VmState.RUNNING, RAM),
                    new VmInfo(world.guest1Id, "guest1", VmRole.SECONDARY, VmState.STOPPED, RAM),
                    new VmInfo(world.guest2Id, "guest2", VmRole.SECONDARY, VmState.CREATED, RAM)), world.hypervisor.listVms());
            world.hypervisor.destroyVm(world.guest2Id);
            assertEquals(2, world.hypervisor.listVms().size());
            assertEquals(VmState.DESTROYED, world.guest2.state());
            // A new primary may be created once the old one is gone; ids are never reused.
            world.hypervisor.destroyVm(world.hostId);
            VmId second = world.hypervisor.createVm(VmSpec.primary("host", RAM));
            assertTrue(second.value() > world.guest2Id.value());
        }
    }

    @Test
    void shouldRunTheHandlerOnTheVmsOwnInterruptThread() throws InterruptedException {
        try (World world = new World()) {
            AtomicReference<String> thread = new AtomicReference<>();
            CountDownLatch delivered = new CountDownLatch(1);
            world.host.setInterruptHandler(i -> {
                thread.set(Thread.currentThread().getName() + (Thread.currentThread().isDaemon() ? " daemon" : ""));
                delivered.countDown();
            });
            world.started();
            world.guest1.ringDoorbell(world.hostId, 1);
            assertTrue(delivered.await(5, TimeUnit.SECONDS));
            assertEquals("airlock-vm-host-irq daemon", thread.get());
        }
    }

    @Test
    void shouldTellThePeerWhenAVmIsDestroyed() {
        try (World world = new World()) {
            Recorder host = new Recorder();
            world.host.setInterruptHandler(host);
            world.started();
            world.guest1.sendMessage(world.hostId, new byte[] {1});
            assertEquals(InterruptCause.MESSAGE_AVAILABLE, host.next().cause());
            world.hypervisor.destroyVm(world.guest1Id);
            assertEquals(new Interrupt(InterruptCause.PEER_GONE, world.guest1Id), host.next());
            host.expectNone(30);
            assertTrue(vmThreads().stream().noneMatch(t -> t.getName().equals("airlock-vm-guest1-irq")));
        }
    }

    @Test
    void shouldKillAVmWhoseHandlerThrowsAndTellItsPeer() {
        try (World world = new World()) {
            Recorder host = new Recorder();
            world.host.setInterruptHandler(host);
            world.guest1.setInterruptHandler(i -> {
                throw new IllegalStateException("guest kernel panic (expected by the test)");
            });
            world.started();
            world.host.ringDoorbell(world.guest1Id, 1);
            assertEquals(new Interrupt(InterruptCause.PEER_GONE, world.guest1Id), host.next());
            assertEquals(VmState.DESTROYED, world.guest1.state());
            assertFalse(world.hypervisor.listVms().stream().anyMatch(v -> v.id().equals(world.guest1Id)));
            await("the dead vm's interrupt thread to end", WAIT,
                    () -> vmThreads().stream().noneMatch(t -> t.getName().equals("airlock-vm-guest1-irq")));
        }
    }

    @Test
    void shouldLetAHandlerDestroyItsOwnVm() {
        try (World world = new World()) {
            Recorder host = new Recorder();
            world.host.setInterruptHandler(host);
            world.guest1.setInterruptHandler(i -> world.hypervisor.destroyVm(world.guest1Id));
            world.started();
            world.host.ringDoorbell(world.guest1Id, 1);
            assertEquals(new Interrupt(InterruptCause.PEER_GONE, world.guest1Id), host.next());
            await("the interrupt thread to end", WAIT,
                    () -> vmThreads().stream().noneMatch(t -> t.getName().equals("airlock-vm-guest1-irq")));
        }
    }

    @Test
    void shouldNeverRunAHandlerTwiceAtOnceAcrossStopAndStart() {
        try (World world = new World()) {
            AtomicInteger inside = new AtomicInteger();
            AtomicInteger overlaps = new AtomicInteger();
            AtomicInteger handled = new AtomicInteger();
            world.host.setInterruptHandler(i -> {
                if (inside.incrementAndGet() > 1) {
                    overlaps.incrementAndGet();
                }
                world.host.readAndClearDoorbell(world.guest1Id);
                // The handler restarts its own vm: the next thread must wait for this one.
                world.hypervisor.stopVm(world.hostId);
                world.hypervisor.startVm(world.hostId);
                Thread.yield();
                inside.decrementAndGet();
                handled.incrementAndGet();
            });
            world.started();
            for (int round = 1; round <= 200; round++) {
                world.guest1.ringDoorbell(world.hostId, 1);
                int target = round;
                await("round " + round, WAIT, () -> handled.get() >= target);
            }
            assertEquals(0, overlaps.get());
        }
        await("every interrupt thread to end", WAIT, () -> vmThreads().isEmpty());
    }

    private static void cycle(int vms) {
        InProcessHypervisor hypervisor = new InProcessHypervisor();
        VmId host = hypervisor.createVm(VmSpec.primary("host", RAM));
        hypervisor.startVm(host);
        for (int i = 0; i < vms; i++) {
            VmId guest = hypervisor.createVm(VmSpec.secondary("guest" + i, RAM));
            hypervisor.connectMessageQueues(host, guest, 4);
            hypervisor.connectDoorbells(host, guest);
            hypervisor.createSharedRegion(host, guest, "g" + i + ".dev", 16384, 0x1_0000_0000L + i * 16384L, 0x4000_0000L);
            hypervisor.startVm(guest);
            VmContext context = hypervisor.context(guest);
            context.sendMessage(host, new byte[] {(byte) i});
            context.ringDoorbell(host, 1);
            hypervisor.context(host).receiveMessage(guest).orElseThrow();
            if (i % 2 == 0) {
                hypervisor.destroyVm(guest); // the rest go with close()
            }
        }
        hypervisor.close();
    }

    @Test
    void shouldLeakNoThreadsNorFdsAcrossManyVms() {
        cycle(2); // warm up: classes, lazily opened jars
        int fdsBefore = openFdCount();
        int threadsBefore = Thread.getAllStackTraces().size();
        for (int round = 0; round < 20; round++) {
            cycle(10);
        }
        assertTrue(vmThreads().isEmpty(), () -> "vm threads left: " + vmThreads());
        await("fds back to " + fdsBefore, WAIT, () -> openFdCount() <= fdsBefore);
        await("threads back to " + threadsBefore, WAIT, () -> Thread.getAllStackTraces().size() <= threadsBefore);
        assertTrue(TestSupport.mappingsNamed("memfd:airlock:").isEmpty(), () -> "mappings left: " + TestSupport.mappingsNamed("memfd:airlock:"));
    }

    @Test
    void shouldDestroyEverythingOnClose() {
        World world = new World().started();
        world.hypervisor.createSharedRegion(world.hostId, world.guest1Id, "close.test", 8192, 0x1_0000_0000L, 0x4000_0000L);
        assertEquals(3, vmThreads().size());
        world.close();
        assertTrue(world.hypervisor.listVms().isEmpty());
        assertTrue(vmThreads().isEmpty());
        assertTrue(TestSupport.openFdsNamed("airlock:close.test").isEmpty());
        world.close(); // idempotent
    }
}
