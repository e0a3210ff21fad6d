package dev.airlock.virtio;

import dev.airlock.dma.CoherentBuffer;
import dev.airlock.memory.SharedMemory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_INDIRECT;
import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_NEXT;
import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_WRITE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The device side against a hand-written (often hostile) driver, one rule per test. */
class VirtqueueDeviceTest {
    private static final int SIZE = 8;
    private static final long INDIRECT = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_INDIRECT_DESC);
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

    /** Pops, expects a rejection naming {@code field}, and checks nothing was consumed or written. */
    private VirtioFault assertRejected(VirtqueueDevice device, String field) {
        byte[] before = bed.snapshotShared();
        int nextAvail = device.nextAvail();
        VirtioProtocolException e = assertThrows(VirtioProtocolException.class, device::pop);
        VirtioFault fault = e.fault();
        assertTrue(fault.field().startsWith(field), () -> "field of " + fault.message());
        assertEquals("raw", fault.source());
        assertTrue(device.isBroken());
        assertEquals(fault, device.fault());
        assertEquals(nextAvail, device.nextAvail(), "nextAvail moved");
        assertArrayEquals(before, bed.snapshotShared(), "shared memory was modified");
        assertThrows(VirtioProtocolException.class, device::pop, "a broken queue must refuse further work");
        return fault;
    }

    @Test
    void shouldPopAValidChain() {
        rings.desc(3, buf, 100, VIRTQ_DESC_F_NEXT, 5);
        rings.desc(5, buf + 100, 50, VIRTQ_DESC_F_NEXT, 1);
        rings.desc(1, buf + 200, 300, VIRTQ_DESC_F_WRITE, 0);
        rings.makeAvailable(3);
        VirtqueueDevice device = rings.device(PLAIN);
        DescriptorChain chain = device.pop();
        assertNotNull(chain);
        assertEquals(3, chain.head());
        assertEquals(3, chain.descriptorCount());
        assertEquals(2, chain.readableCount());
        assertEquals(150, chain.readableBytes());
        assertEquals(1, chain.writableCount());
        assertEquals(300, chain.writableBytes());
        assertEquals(buf + 200, chain.writable(0).gpa());
        assertNull(device.pop());
        device.pushUsed(chain, 42);
        assertEquals(1, rings.usedIdx());
        assertEquals(3, rings.usedId(0));
        assertEquals(42, rings.usedLen(0));
    }

    @Test
    void shouldAcceptZeroLengthDescriptorsWithoutTranslatingThem() {
        rings.desc(0, 0xdead_0000_0000L, 0, VIRTQ_DESC_F_NEXT, 1);
        rings.desc(1, buf, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
        rings.desc(2, 0xdead_0000_0000L, 0, VIRTQ_DESC_F_WRITE, 0);
        rings.makeAvailable(0);
        DescriptorChain chain = rings.device(PLAIN).pop();
        assertEquals(3, chain.descriptorCount());
        assertEquals(0, chain.readableCount());
        assertEquals(1, chain.writableCount());
    }

    @Test
    void shouldAcceptDirectDescriptorsFollowedByAnIndirectTable() {
        CoherentBuffer table = rings.indirectTable(2);
        RawDriverRings.writeDesc(table.segment(), 0, buf + 64, 8, VIRTQ_DESC_F_NEXT, 1);
        RawDriverRings.writeDesc(table.segment(), 1, buf + 128, 32, VIRTQ_DESC_F_WRITE, 0);
        rings.desc(6, buf, 64, VIRTQ_DESC_F_NEXT, 2);
        // The WRITE flag on the descriptor that points at the table is ignored (§2.7.5.3.2).
        rings.desc(2, table.dmaAddr(), 32, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
        rings.makeAvailable(6);
        DescriptorChain chain = rings.device(INDIRECT).pop();
        assertEquals(3, chain.descriptorCount());
        assertEquals(72, chain.readableBytes());
        assertEquals(32, chain.writableBytes());
    }

    @Test
    void shouldCopyAcrossRangesAsOneStream() {
        MemorySegment data = bed.driverView(buf, 64);
        for (int i = 0; i < 64; i++) {
            data.set(ValueLayout.JAVA_BYTE, i, (byte) i);
        }
        rings.desc(0, buf, 10, VIRTQ_DESC_F_NEXT, 1);
        rings.desc(1, buf + 10, 20, VIRTQ_DESC_F_NEXT, 2);
        rings.desc(2, buf + 100, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
        rings.desc(3, buf + 200, 8, VIRTQ_DESC_F_WRITE, 0);
        rings.makeAvailable(0);
        DescriptorChain chain = rings.device(PLAIN).pop();
        MemorySegment dst = MemorySegment.ofArray(new byte[12]);
        assertEquals(12, chain.readFrom(5, dst));
        for (int i = 0; i < 12; i++) {
            assertEquals((byte) (5 + i), dst.get(ValueLayout.JAVA_BYTE, i));
        }
        assertEquals(6, chain.writeTo(10, MemorySegment.ofArray(new byte[] {1, 2, 3, 4, 5, 6, 7, 8})));
        assertEquals((byte) 1, bed.driverView(buf + 202, 1).get(ValueLayout.JAVA_BYTE, 0));
    }

    @Test
    void rejectsALoop() {
        rings.desc(0, buf, 8, VIRTQ_DESC_F_NEXT, 1);
        rings.desc(1, buf, 8, VIRTQ_DESC_F_NEXT, 2);
        rings.desc(2, buf, 8, VIRTQ_DESC_F_NEXT, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(PLAIN), "desc[");
    }

    @Test
    void rejectsASelfLoopInAnIndirectTable() {
        CoherentBuffer table = rings.indirectTable(4);
        RawDriverRings.writeDesc(table.segment(), 0, buf, 8, VIRTQ_DESC_F_NEXT, 1);
        RawDriverRings.writeDesc(table.segment(), 1, buf, 8, VIRTQ_DESC_F_NEXT, 1);
        rings.desc(0, table.dmaAddr(), 64, VIRTQ_DESC_F_INDIRECT, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(INDIRECT), "indirect[1].next");
    }

    @Test
    void rejectsAChainLongerThanTheQueueSize() {
        // 7 direct descriptors, then an indirect table of 2: 9 buffers on a queue of 8.
        for (int i = 0; i < 6; i++) {
            rings.desc(i, buf, 8, VIRTQ_DESC_F_NEXT, i + 1);
        }
        CoherentBuffer table = rings.indirectTable(3);
        RawDriverRings.writeDesc(table.segment(), 0, buf, 8, VIRTQ_DESC_F_NEXT, 1);
        RawDriverRings.writeDesc(table.segment(), 1, buf, 8, VIRTQ_DESC_F_NEXT, 2);
        RawDriverRings.writeDesc(table.segment(), 2, buf, 8, 0, 0);
        rings.desc(6, table.dmaAddr(), 48, VIRTQ_DESC_F_INDIRECT, 0);
        rings.makeAvailable(0);
        VirtioFault fault = assertRejected(rings.device(INDIRECT), "indirect[2]");
        assertTrue(fault.reason().contains("more than the queue size"));
    }

    @Test
    void rejectsANestedIndirectTable() {
        CoherentBuffer inner = rings.indirectTable(1);
        RawDriverRings.writeDesc(inner.segment(), 0, buf, 8, 0, 0);
        CoherentBuffer outer = rings.indirectTable(1);
        RawDriverRings.writeDesc(outer.segment(), 0, inner.dmaAddr(), 16, VIRTQ_DESC_F_INDIRECT, 0);
        rings.desc(0, outer.dmaAddr(), 16, VIRTQ_DESC_F_INDIRECT, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(INDIRECT), "indirect[0].flags");
    }

    @Test
    void rejectsAnIndirectLengthThatIsNotAMultipleOf16() {
        CoherentBuffer table = rings.indirectTable(2);
        rings.desc(0, table.dmaAddr(), 24, VIRTQ_DESC_F_INDIRECT, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(INDIRECT), "desc[0].len");
    }

    @Test
    void rejectsAnEmptyIndirectTable() {
        CoherentBuffer table = rings.indirectTable(1);
        rings.desc(0, table.dmaAddr(), 0, VIRTQ_DESC_F_INDIRECT, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(INDIRECT), "desc[0].len");
    }

    @Test
    void rejectsAnIndirectTableLongerThanTheQueueSize() {
        CoherentBuffer table = rings.indirectTable(SIZE + 1);
        rings.desc(0, table.dmaAddr(), 16L * (SIZE + 1), VIRTQ_DESC_F_INDIRECT, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(INDIRECT), "desc[0].len");
    }

    @Test
    void rejectsIndirectWhenNotNegotiated() {
        CoherentBuffer table = rings.indirectTable(1);
        RawDriverRings.writeDesc(table.segment(), 0, buf, 8, 0, 0);
        rings.desc(0, table.dmaAddr(), 16, VIRTQ_DESC_F_INDIRECT, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(PLAIN), "desc[0].flags");
    }

    @Test
    void rejectsIndirectTogetherWithNext() {
        CoherentBuffer table = rings.indirectTable(1);
        RawDriverRings.writeDesc(table.segment(), 0, buf, 8, 0, 0);
        rings.desc(0, table.dmaAddr(), 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
        rings.desc(1, buf, 8, 0, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(INDIRECT), "desc[0].flags");
    }

    @Test
    void rejectsAMisalignedIndirectTable() {
        CoherentBuffer table = rings.indirectTable(2);
        rings.desc(0, table.dmaAddr() + 4, 16, VIRTQ_DESC_F_INDIRECT, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(INDIRECT), "desc[0].addr");
    }

    @Test
    void rejectsAHeadIndexOutOfRange() {
        rings.makeAvailable(SIZE);
        assertRejected(rings.device(PLAIN), "avail.ring[0]");
    }

    @Test
    void rejectsAHeadAlreadyInFlight() {
        rings.desc(2, buf, 8, 0, 0);
        rings.makeAvailable(2, 2);
        VirtqueueDevice device = rings.device(PLAIN);
        assertNotNull(device.pop());
        assertRejected(device, "avail.ring[1]");
    }

    @Test
    void rejectsANextIndexOutOfRange() {
        rings.desc(0, buf, 8, VIRTQ_DESC_F_NEXT, SIZE);
        rings.makeAvailable(0);
        assertRejected(rings.device(PLAIN), "desc[0].next");
    }

    @Test
    void rejectsANextIndexOutOfRangeInAnIndirectTable() {
        CoherentBuffer table = rings.indirectTable(2);
        RawDriverRings.writeDesc(table.segment(), 0, buf, 8, VIRTQ_DESC_F_NEXT, 2);
        rings.desc(0, table.dmaAddr(), 32, VIRTQ_DESC_F_INDIRECT, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(INDIRECT), "indirect[0].next");
    }

    @Test
    void rejectsReservedFlags() {
        rings.desc(0, buf, 8, 0x8, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(PLAIN), "desc[0].flags");
    }

    @Test
    void rejectsAReadableDescriptorAfterAWritableOne() {
        rings.desc(0, buf, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
        rings.desc(1, buf + 8, 8, 0, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(PLAIN), "desc[1].flags");
    }

    @Test
    void rejectsATotalLengthOf2To32() {
        // A sparse 2 GiB memfd so that the first descriptor (2^31 bytes) translates.
        try (SharedMemory big = SharedMemory.create("vq-big", 1L << 31)) {
            long bigGpa = 0x10_0000_0000L;
            bed.deviceSpace.add(big.region(bigGpa));
            rings.desc(0, bigGpa, 1L << 31, VIRTQ_DESC_F_NEXT, 1);
            rings.desc(1, bigGpa, 1L << 31, 0, 0);
            rings.makeAvailable(0);
            assertRejected(rings.device(PLAIN), "desc[1].len");
        }
    }

    @Test
    void rejectsAnAddressOutsideTheGrantedRegion() {
        // The driver's private RAM is not in the device's space.
        rings.desc(0, TestBed.PRIVATE_GPA, 8, 0, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(PLAIN), "desc[0].addr");
    }

    @Test
    void rejectsABufferRunningPastTheEndOfTheRegion() {
        long end = TestBed.SHARED_GPA + bed.deviceMapping.segment().byteSize();
        rings.desc(0, end - 8, 9, 0, 0);
        rings.makeAvailable(0);
        assertRejected(rings.device(PLAIN), "desc[0].addr");
    }

    @Test
    void rejectsAnAvailIdxTooFarAhead() {
        rings.setAvailIdx(SIZE + 1);
        assertRejected(rings.device(PLAIN), "avail.idx");
    }

    @Test
    void rejectsAnAvailIdxTooFarAheadAcrossTheWrap() {
        VirtqueueDevice device = rings.device(PLAIN);
        device.startIndicesAt(0xfffe);
        rings.setAvailIdx(0xfffe + SIZE + 1);
        assertRejected(device, "avail.idx");
    }

    @Test
    void rejectsMisalignedRingAddresses() {
        assertEquals("queue.desc", assertThrows(VirtioProtocolException.class, () -> new VirtqueueDevice("raw", bed.deviceSpace,
                SIZE, rings.desc.dmaAddr() + 8, rings.avail.dmaAddr(), rings.used.dmaAddr(), PLAIN)).fault().field());
        assertEquals("queue.avail", assertThrows(VirtioProtocolException.class, () -> new VirtqueueDevice("raw", bed.deviceSpace,
                SIZE, rings.desc.dmaAddr(), rings.avail.dmaAddr() + 1, rings.used.dmaAddr(), PLAIN)).fault().field());
        assertEquals("queue.used", assertThrows(VirtioProtocolException.class, () -> new VirtqueueDevice("raw", bed.deviceSpace,
                SIZE, rings.desc.dmaAddr(), rings.avail.dmaAddr(), rings.used.dmaAddr() + 2, PLAIN)).fault().field());
    }

    @Test
    void rejectsARingOutsideTheGrantedRegion() {
        long end = TestBed.SHARED_GPA + bed.deviceMapping.segment().byteSize();
        VirtioProtocolException e = assertThrows(VirtioProtocolException.class, () -> new VirtqueueDevice("raw", bed.deviceSpace,
                SIZE, end - 64, rings.avail.dmaAddr(), rings.used.dmaAddr(), PLAIN));
        assertEquals("queue.desc", e.fault().field());
    }

    @Test
    void rejectsAQueueSizeThatIsNotAPowerOfTwo() {
        for (int size : new int[] {0, 3, 65536, -8}) {
            VirtioProtocolException e = assertThrows(VirtioProtocolException.class, () -> new VirtqueueDevice("raw", bed.deviceSpace,
                    size, rings.desc.dmaAddr(), rings.avail.dmaAddr(), rings.used.dmaAddr(), PLAIN));
            assertEquals("queue.size", e.fault().field());
        }
    }

    @Test
    void shouldSuppressInterruptsWithTheNoInterruptFlag() {
        rings.desc(0, buf, 8, 0, 0);
        rings.desc(1, buf, 8, 0, 0);
        rings.makeAvailable(0, 1);
        VirtqueueDevice device = rings.device(PLAIN);
        device.pushUsed(device.pop(), 0);
        assertTrue(device.needsInterrupt());
        assertEquals(false, device.needsInterrupt(), "nothing new since the last decision");
        VirtqAvailLayout.FLAGS.set(rings.avail.segment(), 0L, (short) VirtqAvailLayout.VIRTQ_AVAIL_F_NO_INTERRUPT);
        device.pushUsed(device.pop(), 0);
        assertEquals(false, device.needsInterrupt());
    }

    @Test
    void shouldInterruptWhenUsedIdxPassesUsedEvent() {
        long features = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX);
        for (int i = 0; i < 4; i++) {
            rings.desc(i, buf, 8, 0, 0);
        }
        rings.makeAvailable(0, 1, 2, 3);
        VirtqueueDevice device = rings.device(features);
        // used_event = 2: interrupt when the element at used idx 2 is published.
        VirtqAvailLayout.U16.set(rings.avail.segment(), VirtqAvailLayout.usedEventOffset(SIZE), (short) 2);
        device.pushUsed(device.pop(), 0);
        assertEquals(false, device.needsInterrupt());
        device.pushUsed(device.pop(), 0);
        assertEquals(false, device.needsInterrupt());
        device.addUsed(device.pop(), 0);
        device.addUsed(device.pop(), 0);
        device.publishUsed();
        assertTrue(device.needsInterrupt());
    }

    @Test
    void shouldReportPendingWorkWhenReenablingNotifications() {
        VirtqueueDevice device = rings.device(PLAIN);
        device.disableNotifications();
        assertEquals(VirtqUsedLayout.VIRTQ_USED_F_NO_NOTIFY, (short) VirtqUsedLayout.FLAGS.get(rings.used.segment(), 0L));
        assertTrue(device.enableNotifications());
        assertEquals(0, (short) VirtqUsedLayout.FLAGS.get(rings.used.segment(), 0L));
        rings.desc(0, buf, 8, 0, 0);
        rings.makeAvailable(0);
        assertEquals(false, device.enableNotifications());
    }

    @Test
    void shouldParkAvailEventFarAheadWhileNotificationsAreOffWithEventIdx() {
        VirtqueueDevice device = rings.device(VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX));
        long availEvent = VirtqUsedLayout.availEventOffset(device.size());
        device.disableNotifications();
        assertEquals((short) 0x8000, (short) VirtqUsedLayout.U16.get(rings.used.segment(), availEvent),
                "half the index space ahead of nextAvail 0: no avail idx the driver can reach crosses it");
        assertEquals(0, (short) VirtqUsedLayout.FLAGS.get(rings.used.segment(), 0L), "flags are not used with EVENT_IDX");
        assertTrue(device.enableNotifications());
        assertEquals(0, (short) VirtqUsedLayout.U16.get(rings.used.segment(), availEvent), "back at nextAvail");
        rings.desc(0, buf, 8, 0, 0);
        rings.makeAvailable(0);
        assertEquals(false, device.enableNotifications());
    }

    @Test
    void shouldRefuseToUseAChainTwiceOrTooLong() {
        rings.desc(0, buf, 8, VIRTQ_DESC_F_WRITE, 0);
        rings.makeAvailable(0);
        VirtqueueDevice device = rings.device(PLAIN);
        DescriptorChain chain = device.pop();
        assertThrows(IllegalArgumentException.class, () -> device.addUsed(chain, 9));
        device.addUsed(chain, 8);
        assertThrows(IllegalStateException.class, () -> device.addUsed(chain, 8));
        assertEquals(0, rings.usedIdx(), "not published yet");
        device.publishUsed();
        assertEquals(1, rings.usedIdx());
    }
}
