package dev.airlock.hypervisor;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static dev.airlock.hypervisor.TestSupport.Recorder;
import static dev.airlock.hypervisor.TestSupport.World;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MessageQueueTest {
    private World world;

    @AfterEach
    void close() {
        if (world != null) {
            world.close();
        }
    }

    private static byte[] message(int value) {
        return new byte[] {(byte) value, (byte) (value >> 8), (byte) (value >> 16), (byte) (value >> 24)};
    }

    private static int value(byte[] message) {
        return (message[0] & 0xff) | (message[1] & 0xff) << 8 | (message[2] & 0xff) << 16 | (message[3] & 0xff) << 24;
    }

    @Test
    void shouldReportFullAtTheDepthAndEmptyWhenDrained() {
        world = new World(HypervisorConfig.DEFAULT, 4).started();
        for (int i = 0; i < 4; i++) {
            assertEquals(SendResult.OK, world.guest1.sendMessage(world.hostId, message(i)));
        }
        assertEquals(SendResult.FULL, world.guest1.sendMessage(world.hostId, message(4)));
        assertEquals(SendResult.FULL, world.guest1.sendMessage(world.hostId, message(5)));
        for (int i = 0; i < 4; i++) {
            assertEquals(i, value(world.host.receiveMessage(world.guest1Id).orElseThrow()));
        }
        assertTrue(world.host.receiveMessage(world.guest1Id).isEmpty());
        MemorySegment buffer = MemorySegment.ofArray(new byte[240]);
        assertEquals(VmContext.EMPTY, world.host.receiveMessage(world.guest1Id, buffer));
        // The other direction is a separate queue, untouched.
        assertTrue(world.guest1.receiveMessage(world.hostId).isEmpty());
    }

    @Test
    void shouldKeepFifoOrderAcrossManyLapsOfTheRing() {
        world = new World(HypervisorConfig.DEFAULT, 3).started();
        int sent = 0;
        int received = 0;
        for (int round = 0; round < 1000; round++) {
            int burst = 1 + round % 3;
            for (int i = 0; i < burst; i++) {
                assertEquals(SendResult.OK, world.host.sendMessage(world.guest1Id, message(sent++)));
            }
            for (int i = 0; i < burst; i++) {
                assertEquals(received++, value(world.guest1.receiveMessage(world.hostId).orElseThrow()));
            }
        }
        assertTrue(world.guest1.receiveMessage(world.hostId).isEmpty());
    }

    @Test
    void shouldCarryEmptyMessagesAndMessagesUpToAConfiguredSize() {
        world = new World(new HypervisorConfig(1024), 4).started();
        assertEquals(1024, world.guest1.maxMessageBytes());
        byte[] big = new byte[1024];
        for (int i = 0; i < big.length; i++) {
            big[i] = (byte) (i * 7);
        }
        assertEquals(SendResult.OK, world.guest1.sendMessage(world.hostId, new byte[0]));
        assertEquals(SendResult.OK, world.guest1.sendMessage(world.hostId, big));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(1024);
            assertEquals(0, world.host.receiveMessage(world.guest1Id, buffer));
            assertEquals(1024, world.host.receiveMessage(world.guest1Id, buffer));
            assertArrayEquals(big, buffer.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
        }
        HypervisorRefusedException e = org.junit.jupiter.api.Assertions.assertThrows(HypervisorRefusedException.class,
                () -> world.guest1.sendMessage(world.hostId, new byte[1025]));
        assertEquals(RefusalReason.MESSAGE_TOO_LARGE, e.reason());
    }

    @Test
    void shouldInterruptTheReceiverOncePerTransitionToNonEmpty() {
        world = new World(HypervisorConfig.DEFAULT, 4);
        Recorder host = new Recorder();
        world.host.setInterruptHandler(host);
        world.started();
        world.guest1.sendMessage(world.hostId, message(1));
        assertEquals(new Interrupt(InterruptCause.MESSAGE_AVAILABLE, world.guest1Id), host.next());
        world.guest1.sendMessage(world.hostId, message(2));
        world.guest1.sendMessage(world.hostId, message(3));
        host.expectNone(50); // still non-empty: no transition, no interrupt
        while (world.host.receiveMessage(world.guest1Id).isPresent()) {
            // drain
        }
        world.guest1.sendMessage(world.hostId, message(4));
        assertEquals(new Interrupt(InterruptCause.MESSAGE_AVAILABLE, world.guest1Id), host.next());
    }

    @Test
    void shouldInterruptTheSenderWhenTheQueueStopsBeingFull() {
        world = new World(HypervisorConfig.DEFAULT, 4);
        Recorder guest = new Recorder();
        world.guest1.setInterruptHandler(guest);
        world.started();
        for (int i = 0; i < 4; i++) {
            world.guest1.sendMessage(world.hostId, message(i));
        }
        assertEquals(SendResult.FULL, world.guest1.sendMessage(world.hostId, message(4)));
        guest.expectNone(30);
        world.host.receiveMessage(world.guest1Id).orElseThrow();
        assertEquals(new Interrupt(InterruptCause.QUEUE_NOT_FULL, world.hostId), guest.next());
        world.host.receiveMessage(world.guest1Id).orElseThrow();
        guest.expectNone(50); // it was not full: no transition, no interrupt
        assertEquals(SendResult.OK, world.guest1.sendMessage(world.hostId, message(4)));
    }

    @Test
    void shouldHoldInterruptsWhileTheReceiverIsStoppedAndDeliverThemOnStart() {
        world = new World(HypervisorConfig.DEFAULT, 4);
        Recorder host = new Recorder();
        world.host.setInterruptHandler(host);
        world.started();
        world.hypervisor.stopVm(world.hostId);
        assertEquals(SendResult.OK, world.guest1.sendMessage(world.hostId, message(7)));
        world.guest1.ringDoorbell(world.hostId, 2);
        host.expectNone(50);
        world.hypervisor.startVm(world.hostId);
        List<Interrupt> got = List.of(host.next(), host.next());
        assertTrue(got.contains(new Interrupt(InterruptCause.MESSAGE_AVAILABLE, world.guest1Id)), got.toString());
        assertTrue(got.contains(new Interrupt(InterruptCause.DOORBELL, world.guest1Id)), got.toString());
        assertEquals(7, value(world.host.receiveMessage(world.guest1Id).orElseThrow()));
        assertEquals(2, world.host.readAndClearDoorbell(world.guest1Id));
    }

    @Test
    void shouldDeliverEveryMessageToAReceiverThatDrainsOnEachInterrupt() throws InterruptedException {
        world = new World(HypervisorConfig.DEFAULT, 8);
        int total = 20_000;
        CountDownLatch done = new CountDownLatch(1);
        AtomicReference<String> failure = new AtomicReference<>();
        int[] expected = {0};
        world.host.setInterruptHandler(interrupt -> {
            byte[] m;
            while ((m = world.host.receiveMessage(world.guest1Id).orElse(null)) != null) {
                if (value(m) != expected[0]) {
                    failure.compareAndSet(null, "expected " + expected[0] + " got " + value(m));
                }
                if (++expected[0] == total) {
                    done.countDown();
                }
            }
        });
        world.started();
        for (int i = 0; i < total; i++) {
            while (world.guest1.sendMessage(world.hostId, message(i)) == SendResult.FULL) {
                Thread.yield();
            }
        }
        assertTrue(done.await(30, TimeUnit.SECONDS), "received " + expected[0] + " of " + total);
        assertNull(failure.get());
    }

    /** Streams messages to its peer on QUEUE_NOT_FULL and drains on MESSAGE_AVAILABLE, all on its interrupt thread. */
    private static final class Streamer implements InterruptHandler {
        private final VmContext self;
        private final VmId peer;
        private final int total;
        private final CountDownLatch received;
        private final AtomicReference<String> failure;
        private final MemorySegment out = Arena.ofAuto().allocate(64, 8);
        private final MemorySegment in = Arena.ofAuto().allocate(240, 8);
        private int nextToSend;
        private int nextExpected;
        int notFullInterrupts;
        int availableInterrupts;

        Streamer(VmContext self, VmId peer, int total, CountDownLatch received, AtomicReference<String> failure) {
            this.self = self;
            this.peer = peer;
            this.total = total;
            this.received = received;
            this.failure = failure;
        }

        @Override
        public void onInterrupt(Interrupt interrupt) {
            switch (interrupt.cause()) {
                case MESSAGE_AVAILABLE -> {
                    availableInterrupts++;
                    int length;
                    while ((length = self.receiveMessage(peer, in)) != VmContext.EMPTY) {
                        int value = in.get(JAVA_INT, 0);
                        if (length != 16 || value != nextExpected) {
                            failure.compareAndSet(null, self.name() + ": expected " + nextExpected + " got " + value);
                        }
                        if (++nextExpected == total) {
                            received.countDown();
                        }
                    }
                }
                case QUEUE_NOT_FULL, DOORBELL -> {
                    if (interrupt.cause() == InterruptCause.DOORBELL) {
                        self.readAndClearDoorbell(peer);
                    } else {
                        notFullInterrupts++;
                    }
                    while (nextToSend < total) {
                        out.set(JAVA_INT, 0, nextToSend);
                        if (self.sendMessage(peer, out.asSlice(0, 16)) == SendResult.FULL) {
                            break;
                        }
                        nextToSend++;
                    }
                }
                case PEER_GONE -> failure.compareAndSet(null, "peer gone");
            }
        }
    }

    @Test
    void shouldExchange100kMessagesEachWayDrivenOnlyByInterrupts() throws InterruptedException {
        world = new World(HypervisorConfig.DEFAULT, 64);
        int total = 100_000;
        CountDownLatch received = new CountDownLatch(2);
        AtomicReference<String> failure = new AtomicReference<>();
        Streamer host = new Streamer(world.host, world.guest1Id, total, received, failure);
        Streamer guest = new Streamer(world.guest1, world.hostId, total, received, failure);
        world.host.setInterruptHandler(host);
        world.guest1.setInterruptHandler(guest);
        world.started();
        // Kick both producers: from then on they run on QUEUE_NOT_FULL interrupts alone.
        world.host.ringDoorbell(world.guest1Id, 1);
        world.guest1.ringDoorbell(world.hostId, 1);
        assertTrue(received.await(30, TimeUnit.SECONDS), "host got " + host.nextExpected + ", guest got " + guest.nextExpected);
        assertNull(failure.get());
        world.hypervisor.stopVm(world.hostId); // joins the interrupt threads: their counters are now visible
        world.hypervisor.stopVm(world.guest1Id);
        assertEquals(total, host.nextToSend);
        assertEquals(total, guest.nextToSend);
        assertTrue(host.notFullInterrupts > 0 && guest.notFullInterrupts > 0, "the producers must have hit FULL");
        assertTrue(host.availableInterrupts <= total, "interrupts coalesce");
    }

    @Test
    void shouldKeepEachSendersOrderWithSeveralSendingThreads() throws InterruptedException {
        world = new World(HypervisorConfig.DEFAULT, 16);
        int threads = 4;
        int perThread = 20_000;
        int[] next = new int[threads];
        AtomicReference<String> failure = new AtomicReference<>();
        CountDownLatch done = new CountDownLatch(threads * perThread);
        world.host.setInterruptHandler(interrupt -> {
            byte[] m;
            while ((m = world.host.receiveMessage(world.guest1Id).orElse(null)) != null) {
                int sender = m[4];
                int value = value(m);
                if (value != next[sender]++) {
                    failure.compareAndSet(null, "sender " + sender + ": expected " + (next[sender] - 1) + " got " + value);
                }
                done.countDown();
            }
        });
        world.started();
        List<Thread> senders = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int sender = t;
            senders.add(Thread.ofPlatform().start(() -> {
                for (int i = 0; i < perThread; i++) {
                    byte[] m = java.util.Arrays.copyOf(message(i), 5);
                    m[4] = (byte) sender;
                    while (world.guest1.sendMessage(world.hostId, m) == SendResult.FULL) {
                        Thread.yield();
                    }
                }
            }));
        }
        for (Thread sender : senders) {
            sender.join();
        }
        assertTrue(done.await(30, TimeUnit.SECONDS), done.getCount() + " messages missing");
        assertNull(failure.get());
    }
}
