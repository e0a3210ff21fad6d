package dev.airlock.hypervisor;

import dev.airlock.memory.RegionKind;
import dev.airlock.memory.UnmappedAddressException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static dev.airlock.hypervisor.TestSupport.Recorder;
import static dev.airlock.hypervisor.TestSupport.World;
import static dev.airlock.hypervisor.TestSupport.await;
import static dev.airlock.hypervisor.TestSupport.mappingsNamed;
import static dev.airlock.hypervisor.TestSupport.openFdCount;
import static dev.airlock.hypervisor.TestSupport.openFdsNamed;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SharedRegionTest {
    private static final long HOST_BASE = 0x1_0000_0000L;
    private static final long GUEST_BASE = 0x8000_0000L;
    private static final long SIZE = 64 * 1024;
    private static final String NAME = "guest1.blk0";
    private static final Duration WAIT = Duration.ofSeconds(5);

    private final World world = new World();

    @AfterEach
    void close() {
        world.close();
    }

    private SharedRegionInfo share() {
        return world.hypervisor.createSharedRegion(world.hostId, world.guest1Id, NAME, SIZE, HOST_BASE, GUEST_BASE);
    }

    @Test
    void shouldShowTheSameBytesToBothVmsAtDifferentBases() {
        SharedRegionInfo info = share();
        world.started();
        MemorySegment guestView = world.guest1.addressSpace().translate(GUEST_BASE + 0x100, 8, RegionKind.SHARED);
        guestView.set(JAVA_LONG, 0, 0x1122334455667788L);
        MemorySegment hostView = world.host.addressSpace().translate(HOST_BASE + 0x100, 8, RegionKind.SHARED);
        assertEquals(0x1122334455667788L, hostView.get(JAVA_LONG, 0));
        hostView.set(JAVA_LONG, 0, 42);
        assertEquals(42, guestView.get(JAVA_LONG, 0));
        assertNotEquals(guestView.address(), hostView.address(), "two mappings of one memfd, as two processes would have");

        List<SharedRegionMapping> hostRegions = world.host.sharedRegions();
        assertEquals(1, hostRegions.size());
        assertEquals(new SharedRegionMapping(info.id(), world.guest1Id, hostRegions.get(0).region()), hostRegions.get(0));
        assertEquals(HOST_BASE, hostRegions.get(0).gpaBase());
        assertEquals(GUEST_BASE, world.guest1.sharedRegions().get(0).gpaBase());
        assertEquals(NAME, world.guest1.sharedRegions().get(0).name());
        assertEquals(List.of(info), world.hypervisor.listSharedRegions());
        assertTrue(world.guest1.peers().contains(world.hostId));
    }

    @Test
    void shouldKeepARegionOutOfAThirdVmsAddressSpace() {
        share();
        world.started();
        assertFalse(world.guest2.addressSpace().contains(GUEST_BASE, 1));
        assertFalse(world.guest2.addressSpace().contains(HOST_BASE, 1));
        assertThrows(UnmappedAddressException.class, () -> world.guest2.addressSpace().translate(GUEST_BASE, 8));
        assertTrue(world.guest2.sharedRegions().isEmpty());
        assertEquals(1, world.guest2.addressSpace().regions().size(), "only its own ram");
        assertEquals(RegionKind.PRIVATE, world.guest2.addressSpace().regions().get(0).kind());
    }

    @Test
    void shouldGiveEachVmPrivateRamNoOtherVmSees() {
        world.started();
        MemorySegment hostRam = world.host.addressSpace().translate(0x1000, 8, RegionKind.PRIVATE);
        MemorySegment guestRam = world.guest1.addressSpace().translate(0x1000, 8, RegionKind.PRIVATE);
        hostRam.set(JAVA_LONG, 0, 7);
        assertEquals(0, guestRam.get(JAVA_LONG, 0), "same gpa, different memory");
    }

    @Test
    void shouldRemoveTheRegionAndCloseItsMemfdWhenAVmIsDestroyed() {
        world.started();
        int fdsBefore = openFdCount();
        share();
        assertEquals(1, openFdsNamed("airlock:" + NAME).size());
        assertEquals(2, mappingsNamed("airlock:" + NAME).size(), "one mapping per side");
        MemorySegment hostView = world.host.addressSpace().translate(HOST_BASE, 8);
        Recorder host = new Recorder();
        world.host.setInterruptHandler(host);

        world.hypervisor.destroyVm(world.guest1Id);

        assertEquals(new Interrupt(InterruptCause.PEER_GONE, world.guest1Id), host.next());
        assertFalse(world.host.addressSpace().contains(HOST_BASE, 1));
        assertTrue(world.host.sharedRegions().isEmpty());
        assertTrue(world.hypervisor.listSharedRegions().isEmpty());
        await("the memfd closed and unmapped", WAIT, () -> openFdsNamed("airlock:" + NAME).isEmpty()
                && mappingsNamed("airlock:" + NAME).isEmpty());
        assertEquals(fdsBefore, openFdCount());
        assertThrows(IllegalStateException.class, () -> hostView.get(JAVA_LONG, 0), "a stale slice fails, never dangles");
    }

    @Test
    void shouldKeepTheSurvivorsMappingUntilItsPeerGoneHandlerReturns() throws InterruptedException {
        share();
        CountDownLatch inHandler = new CountDownLatch(1);
        CountDownLatch resetDone = new CountDownLatch(1);
        world.host.setInterruptHandler(interrupt -> {
            if (interrupt.cause() == InterruptCause.PEER_GONE) {
                inHandler.countDown();
                try {
                    resetDone.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        });
        world.started();
        MemorySegment hostView = world.host.addressSpace().translate(HOST_BASE, 8);
        hostView.set(JAVA_LONG, 0, 99);

        world.hypervisor.destroyVm(world.guest1Id);
        assertTrue(inHandler.await(5, TimeUnit.SECONDS));
        // The device side is resetting: its old slice still works, but new translations fail.
        assertEquals(99, hostView.get(JAVA_LONG, 0));
        assertFalse(world.host.addressSpace().contains(HOST_BASE, 8));
        assertEquals(1, openFdsNamed("airlock:" + NAME).size());
        resetDone.countDown();
        await("the memfd closed after the handler", WAIT, () -> openFdsNamed("airlock:" + NAME).isEmpty());
    }

    @Test
    void shouldReleaseAtOnceWhenTheSurvivorIsNotRunning() {
        share();
        world.hypervisor.startVm(world.guest1Id); // the host stays CREATED
        world.hypervisor.destroyVm(world.guest1Id);
        assertTrue(openFdsNamed("airlock:" + NAME).isEmpty());
        assertTrue(mappingsNamed("airlock:" + NAME).isEmpty());
    }

    @Test
    void shouldDestroyARegionOnRequest() {
        SharedRegionInfo info = share();
        world.started();
        world.hypervisor.destroySharedRegion(info.id());
        assertFalse(world.host.addressSpace().contains(HOST_BASE, 1));
        assertFalse(world.guest1.addressSpace().contains(GUEST_BASE, 1));
        assertTrue(openFdsNamed("airlock:" + NAME).isEmpty());
        HypervisorRefusedException e = assertThrows(HypervisorRefusedException.class,
                () -> world.hypervisor.destroySharedRegion(info.id()));
        assertEquals(RefusalReason.NOT_GRANTED, e.reason());
    }

    @Test
    void shouldGiveEachDeviceItsOwnRegion() {
        world.hypervisor.createSharedRegion(world.hostId, world.guest1Id, "guest1.blk0", SIZE, HOST_BASE, GUEST_BASE);
        world.hypervisor.createSharedRegion(world.hostId, world.guest1Id, "guest1.rng0", SIZE, HOST_BASE + SIZE, GUEST_BASE + SIZE);
        world.hypervisor.createSharedRegion(world.hostId, world.guest2Id, "guest2.blk0", SIZE, HOST_BASE + 2 * SIZE, GUEST_BASE);
        assertEquals(3, world.host.sharedRegions().size());
        assertEquals(2, world.guest1.sharedRegions().size());
        assertEquals(1, world.guest2.sharedRegions().size());
        world.hypervisor.destroyVm(world.guest1Id);
        assertEquals(List.of("guest2.blk0"), world.host.sharedRegions().stream().map(SharedRegionMapping::name).toList());
    }

    @Test
    void rejectsAnOverlappingRegionOrATakenNameAndLeaksNothing() {
        int fdsBefore = openFdCount();
        // Overlaps the guest's ram at [0, 1 MiB).
        HypervisorRefusedException overlap = assertThrows(HypervisorRefusedException.class,
                () -> world.hypervisor.createSharedRegion(world.hostId, world.guest1Id, NAME, SIZE, HOST_BASE, 0x8000));
        assertEquals(RefusalReason.CONFLICT, overlap.reason());
        assertTrue(overlap.getMessage().contains("overlaps"), overlap.getMessage());
        assertFalse(world.host.addressSpace().contains(HOST_BASE, 1), "the primary's half is rolled back");
        share();
        HypervisorRefusedException taken = assertThrows(HypervisorRefusedException.class,
                () -> world.hypervisor.createSharedRegion(world.hostId, world.guest1Id, NAME, SIZE, HOST_BASE + SIZE, GUEST_BASE + SIZE));
        assertEquals(RefusalReason.CONFLICT, taken.reason());
        world.hypervisor.destroySharedRegion(world.hypervisor.listSharedRegions().get(0).id());
        assertEquals(fdsBefore, openFdCount());
        assertTrue(mappingsNamed("airlock:" + NAME).isEmpty());
    }
}
