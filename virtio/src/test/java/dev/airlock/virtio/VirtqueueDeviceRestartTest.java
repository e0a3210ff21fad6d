package dev.airlock.virtio;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_NEXT;
import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_WRITE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Starting a queue at a vring base (vhost-user), resubmitting in-flight chains, and the inflight tracker hooks. */
class VirtqueueDeviceRestartTest {
    private static final int SIZE = 8;
    private static final long PLAIN = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1);

    private TestBed bed;
    private RawDriverRings rings;
    private long buf;

    @BeforeEach
    void setUp() {
        bed = TestBed.direct();
        rings = new RawDriverRings(bed, SIZE);
        buf = bed.allocBuffer();
    }

    @AfterEach
    void tearDown() {
        bed.close();
    }

    private void setUsedIdx(int idx) {
        VirtqUsedLayout.IDX.set(rings.used.segment(), 0L, (short) idx);
    }

    @Test
    void shouldStartAtTheBaseAndAdoptTheUsedIdxWithoutWritingIt() {
        // An earlier device took 5 chains and completed 3 of them.
        rings.setAvailIdx(5);
        setUsedIdx(3);
        rings.desc(2, buf, 16, VIRTQ_DESC_F_WRITE, 0);
        rings.makeAvailable(2);
        VirtqueueDevice device = rings.device(PLAIN);
        device.startAt(5);
        assertEquals(3, rings.usedIdx(), "used idx must not be written on start");
        assertEquals(5, device.nextAvail());
        assertEquals(3, device.nextUsed());
        DescriptorChain chain = device.pop();
        assertNotNull(chain);
        assertEquals(2, chain.head());
        assertEquals(6, device.nextAvail());
        device.pushUsed(chain, 4);
        assertEquals(4, rings.usedIdx());
        assertEquals(2, rings.usedId(3));
        assertNull(device.pop());
    }

    @Test
    void shouldStartAcrossTheWrap() {
        rings.setAvailIdx(0xfffe);
        setUsedIdx(0xfffe);
        rings.desc(1, buf, 16, VIRTQ_DESC_F_WRITE, 0);
        rings.desc(4, buf + 16, 16, VIRTQ_DESC_F_WRITE, 0);
        rings.desc(6, buf + 32, 16, VIRTQ_DESC_F_WRITE, 0);
        rings.makeAvailable(1, 4, 6);
        VirtqueueDevice device = rings.device(PLAIN);
        device.startAt(0xfffe);
        for (int expected : new int[] {1, 4, 6}) {
            DescriptorChain chain = device.pop();
            assertEquals(expected, chain.head());
            device.pushUsed(chain, 0);
        }
        assertEquals(1, rings.usedIdx());
        assertEquals(1, device.nextAvail());
    }

    @Test
    void rejectsAUsedIdxMoreThanTheQueueSizeBehindTheBase() {
        setUsedIdx(100);
        VirtqueueDevice device = rings.device(PLAIN);
        VirtioProtocolException e = assertThrows(VirtioProtocolException.class, () -> device.startAt(100 + SIZE + 1));
        assertEquals("used.idx", e.fault().field());
        assertTrue(device.isBroken());
    }

    @Test
    void rejectsABaseOutOfRangeOrAfterThePop() {
        VirtqueueDevice device = rings.device(PLAIN);
        assertThrows(IllegalArgumentException.class, () -> device.startAt(0x10000));
        assertThrows(IllegalArgumentException.class, () -> device.startAt(-1));
        assertNull(device.pop());
        assertThrows(IllegalStateException.class, () -> device.startAt(0));
    }

    @Test
    void rejectsAnAvailIdxMoreThanTheQueueSizeAheadOfTheBase() {
        rings.setAvailIdx(40);
        setUsedIdx(40 - SIZE - 1);
        VirtqueueDevice device = rings.device(PLAIN);
        device.startAt(40 - SIZE - 1);
        assertEquals("avail.idx", assertThrows(VirtioProtocolException.class, device::pop).fault().field());
    }

    @Test
    void shouldResubmitInFlightChainsFirstInOrderWithoutMovingNextAvail() {
        rings.desc(3, buf, 10, VIRTQ_DESC_F_NEXT, 4);
        rings.desc(4, buf + 10, 20, VIRTQ_DESC_F_WRITE, 0);
        rings.desc(7, buf + 64, 8, VIRTQ_DESC_F_WRITE, 0);
        rings.desc(0, buf + 128, 8, VIRTQ_DESC_F_WRITE, 0);
        rings.setAvailIdx(2);
        setUsedIdx(0);
        rings.makeAvailable(0);
        VirtqueueDevice device = rings.device(PLAIN);
        device.startAt(2);
        device.resubmit(7);
        device.resubmit(3);
        assertEquals(2, device.pendingResubmits());
        DescriptorChain first = device.pop();
        assertEquals(7, first.head());
        DescriptorChain second = device.pop();
        assertEquals(3, second.head());
        assertEquals(10, second.readableBytes());
        assertEquals(20, second.writableBytes());
        assertEquals(2, device.nextAvail(), "resubmitted chains do not consume avail entries");
        DescriptorChain third = device.pop();
        assertEquals(0, third.head());
        assertEquals(3, device.nextAvail());
        device.addUsed(second, 20);
        device.addUsed(first, 8);
        device.addUsed(third, 8);
        device.publishUsed();
        assertEquals(3, rings.usedIdx());
        assertEquals(3, rings.usedId(0));
        assertEquals(7, rings.usedId(1));
    }

    @Test
    void rejectsHostileResubmissions() {
        VirtqueueDevice device = rings.device(PLAIN);
        assertEquals("inflight.head", assertThrows(VirtioProtocolException.class, () -> device.resubmit(SIZE)).fault().field());
        VirtqueueDevice twice = rings.device(PLAIN);
        twice.resubmit(1);
        assertEquals("inflight.head", assertThrows(VirtioProtocolException.class, () -> twice.resubmit(1)).fault().field());
        assertTrue(twice.isBroken());
    }

    @Test
    void rejectsAResubmittedChainThatIsNoLongerValid() {
        rings.desc(5, buf, 16, VIRTQ_DESC_F_NEXT, 5); // a loop
        VirtqueueDevice device = rings.device(PLAIN);
        device.resubmit(5);
        VirtioProtocolException e = assertThrows(VirtioProtocolException.class, device::pop);
        assertTrue(e.fault().field().startsWith("desc[5]"), e.fault().message());
    }

    @Test
    void shouldTellTheTrackerOfEveryPopUseAndPublication() {
        List<String> events = new ArrayList<>();
        rings.desc(1, buf, 8, VIRTQ_DESC_F_WRITE, 0);
        rings.desc(2, buf + 8, 8, VIRTQ_DESC_F_WRITE, 0);
        rings.makeAvailable(1, 2);
        VirtqueueDevice device = rings.device(PLAIN);
        device.setInflightTracker(new VirtqueueDevice.InflightTracker() {
            @Override
            public void popped(int head) {
                events.add("pop " + head);
            }

            @Override
            public void used(int head) {
                events.add("used " + head);
            }

            @Override
            public void published(int usedIdx) {
                events.add("published " + usedIdx + " seen " + rings.usedIdx());
            }
        });
        DescriptorChain a = device.pop();
        DescriptorChain b = device.pop();
        device.addUsed(b, 1);
        device.addUsed(a, 1);
        device.publishUsed();
        device.publishUsed();
        assertEquals(List.of("pop 1", "pop 2", "used 2", "used 1", "published 2 seen 2"), events);
    }
}
