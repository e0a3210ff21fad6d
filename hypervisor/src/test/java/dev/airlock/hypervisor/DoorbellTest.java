package dev.airlock.hypervisor;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import static dev.airlock.hypervisor.TestSupport.Recorder;
import static dev.airlock.hypervisor.TestSupport.World;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

class DoorbellTest {
    private final World world = new World();

    @AfterEach
    void close() {
        world.close();
    }

    @Test
    void shouldAccumulateFlagsUntilReadAndClearThem() {
        world.started();
        world.guest1.ringDoorbell(world.hostId, 1);
        world.guest1.ringDoorbell(world.hostId, 4);
        assertEquals(5, world.host.readAndClearDoorbell(world.guest1Id));
        assertEquals(0, world.host.readAndClearDoorbell(world.guest1Id));
        world.guest1.ringDoorbell(world.hostId, 1L << 63);
        assertEquals(1L << 63, world.host.readAndClearDoorbell(world.guest1Id));
        assertEquals(0, world.guest1.readAndClearDoorbell(world.hostId), "each direction has its own word");
    }

    @Test
    void shouldInterruptOnTheFirstRingAndAgainOnlyAfterARead() {
        Recorder host = new Recorder();
        world.host.setInterruptHandler(host);
        world.started();
        world.guest1.ringDoorbell(world.hostId, 1);
        assertEquals(new Interrupt(InterruptCause.DOORBELL, world.guest1Id), host.next());
        world.guest1.ringDoorbell(world.hostId, 2);
        host.expectNone(50); // flags already pending: coalesced
        assertEquals(3, world.host.readAndClearDoorbell(world.guest1Id));
        world.guest1.ringDoorbell(world.hostId, 4);
        assertEquals(new Interrupt(InterruptCause.DOORBELL, world.guest1Id), host.next());
        assertEquals(4, world.host.readAndClearDoorbell(world.guest1Id));
    }

    @Test
    void shouldHoldFlagsWithoutInterruptWhileMaskedAndDeliverOnUnmask() {
        Recorder host = new Recorder();
        world.host.setInterruptHandler(host);
        world.started();
        world.host.maskDoorbell(world.guest1Id);
        world.guest1.ringDoorbell(world.hostId, 8);
        world.guest1.ringDoorbell(world.hostId, 16);
        host.expectNone(100);
        world.host.unmaskDoorbell(world.guest1Id);
        assertEquals(new Interrupt(InterruptCause.DOORBELL, world.guest1Id), host.next());
        assertEquals(24, world.host.readAndClearDoorbell(world.guest1Id));
        world.host.maskDoorbell(world.guest1Id);
        world.host.unmaskDoorbell(world.guest1Id);
        host.expectNone(50); // nothing pending: unmask injects nothing
    }

    /** Each round rings one bit and waits until the handler has read it: a lost wake-up hangs the round. */
    private static void ringAndAwaitEach(VmContext ringer, VmId target, AtomicLong seen, long bits, int rounds,
                                         AtomicReference<String> failure) {
        int bit = 0;
        for (int round = 0; round < rounds && failure.get() == null; round++) {
            do {
                bit = (bit + 1) & 63;
            } while ((bits & (1L << bit)) == 0);
            long flag = 1L << bit;
            ringer.ringDoorbell(target, flag);
            long deadline = System.nanoTime() + 5_000_000_000L;
            while ((seen.get() & flag) == 0) {
                if (System.nanoTime() > deadline) {
                    failure.compareAndSet(null, "flag " + Long.toHexString(flag) + " lost in round " + round);
                    return;
                }
                Thread.onSpinWait();
            }
            seen.getAndUpdate(s -> s & ~flag);
        }
    }

    @Test
    void shouldLoseNoFlagAcrossManyRingsFromOneThread() {
        AtomicLong seen = new AtomicLong();
        world.host.setInterruptHandler(i -> seen.getAndAccumulate(world.host.readAndClearDoorbell(world.guest1Id), (a, b) -> a | b));
        world.started();
        AtomicReference<String> failure = new AtomicReference<>();
        ringAndAwaitEach(world.guest1, world.hostId, seen, -1L, 20_000, failure);
        assertNull(failure.get());
        // Then a burst without waiting: the union of all reads is the union of all rings.
        seen.set(0);
        for (int i = 0; i < 200_000; i++) {
            world.guest1.ringDoorbell(world.hostId, 1L << (i % 64));
        }
        TestSupport.await("every flag of the burst", java.time.Duration.ofSeconds(5), () -> seen.get() == -1L);
    }

    @Test
    void shouldLoseNoFlagWithSeveralRingingThreads() throws InterruptedException {
        AtomicLong seen = new AtomicLong();
        world.host.setInterruptHandler(i -> seen.getAndAccumulate(world.host.readAndClearDoorbell(world.guest1Id), (a, b) -> a | b));
        world.started();
        AtomicReference<String> failure = new AtomicReference<>();
        List<Thread> ringers = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            long bits = 0xFFFFL << (16 * t);
            ringers.add(Thread.ofPlatform().start(() -> ringAndAwaitEach(world.guest1, world.hostId, seen, bits, 5_000, failure)));
        }
        for (Thread ringer : ringers) {
            ringer.join();
        }
        assertNull(failure.get());
    }

    @Test
    void shouldRingBothDirectionsIndependently() {
        Recorder host = new Recorder();
        Recorder guest = new Recorder();
        world.host.setInterruptHandler(host);
        world.guest1.setInterruptHandler(guest);
        world.started();
        world.host.ringDoorbell(world.guest1Id, 0x10);
        assertEquals(new Interrupt(InterruptCause.DOORBELL, world.hostId), guest.next());
        host.expectNone(30);
        assertEquals(0x10, world.guest1.readAndClearDoorbell(world.hostId));
        assertEquals(0, world.host.readAndClearDoorbell(world.guest1Id));
    }
}
