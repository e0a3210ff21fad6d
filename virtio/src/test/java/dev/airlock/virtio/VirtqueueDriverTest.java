package dev.airlock.virtio;

import dev.airlock.dma.DmaMappingException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The driver side against a hand-written (often hostile) device writing the used ring directly. */
class VirtqueueDriverTest {
    private static final int SIZE = 8;
    private static final long PLAIN = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1);
    private static final long INDIRECT = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_INDIRECT_DESC);
    private static final long EVENT_IDX = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX);

    private final TestBed bed = TestBed.direct();
    private final ScatterGather sg = new ScatterGather(4);
    private final List<String> completed = new ArrayList<>();

    @AfterEach
    void tearDown() {
        bed.close();
    }

    private VirtqueueDriver<String> driver(long features) {
        return new VirtqueueDriver<>("test-driver", bed.dma, SIZE, features);
    }

    /** Adds a request of one out buffer and one in buffer of {@code inBytes}. */
    private void addRequest(VirtqueueDriver<String> driver, String token, int inBytes) {
        sg.clear().out(bed.allocBuffer(), 16).in(bed.allocBuffer(), inBytes);
        assertTrue(driver.add(sg, token));
    }

    private MemorySegment usedRing(VirtqueueDriver<?> driver) {
        return bed.deviceView(driver.usedAddr(), VirtqUsedLayout.lengthBytes(SIZE));
    }

    /** Writes a used element at {@code slot} and publishes {@code usedIdx}, as a device would. */
    private void deviceUses(VirtqueueDriver<?> driver, int slot, long id, long len, int usedIdx) {
        MemorySegment used = usedRing(driver);
        VirtqUsedLayout.ELEM_ID.set(used, VirtqUsedLayout.elemOffset(slot), (int) id);
        VirtqUsedLayout.ELEM_LEN.set(used, VirtqUsedLayout.elemOffset(slot), (int) len);
        VirtqUsedLayout.IDX.setRelease(used, 0L, (short) usedIdx);
    }

    /** Reaps, expects a fault naming {@code field}, and checks nothing was consumed or unmapped. */
    private void assertRejected(VirtqueueDriver<String> driver, String field) {
        int numFree = driver.numFree();
        int inFlight = driver.inFlight();
        long unmaps = bed.dma.unmaps();
        assertEquals(0, driver.reap((token, len) -> completed.add(token), SIZE));
        assertTrue(driver.isBroken());
        assertTrue(driver.fault().field().startsWith(field), () -> "field of " + driver.fault().message());
        assertEquals("test-driver", driver.fault().source());
        assertTrue(completed.isEmpty(), "a token was handed back");
        assertEquals(numFree, driver.numFree());
        assertEquals(inFlight, driver.inFlight());
        assertEquals(unmaps, bed.dma.unmaps(), "a buffer was unmapped");
        // Refuses further work.
        sg.clear().out(bed.allocBuffer(), 8);
        assertFalse(driver.add(sg, "late"));
        assertEquals(0, driver.reap((token, len) -> completed.add(token), SIZE));
        assertFalse(driver.kickPrepare());
    }

    @Test
    void shouldReapAUsedChainAndUnmapIt() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        addRequest(driver, "a", 32);
        assertEquals(SIZE - 2, driver.numFree());
        assertEquals(2, bed.dma.liveMappings());
        deviceUses(driver, 0, 0, 20, 1);
        List<Long> lengths = new ArrayList<>();
        assertEquals(1, driver.reap((token, len) -> {
            completed.add(token);
            lengths.add(len);
        }, SIZE));
        assertEquals(List.of("a"), completed);
        assertEquals(List.of(20L), lengths);
        assertEquals(SIZE, driver.numFree());
        assertEquals(0, bed.dma.liveMappings());
        assertFalse(driver.isBroken());
    }

    @Test
    void rejectsAUsedIdOutOfRange() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        addRequest(driver, "a", 32);
        deviceUses(driver, 0, SIZE, 0, 1);
        assertRejected(driver, "used.ring[0].id");
    }

    @Test
    void rejectsAHugeUsedId() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        addRequest(driver, "a", 32);
        deviceUses(driver, 0, 0xffff_ffffL, 0, 1);
        assertRejected(driver, "used.ring[0].id");
    }

    @Test
    void rejectsAUsedIdThatIsNotALiveHead() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        addRequest(driver, "a", 32); // head 0, descriptors 0 and 1
        deviceUses(driver, 0, 1, 0, 1); // 1 is in the chain, but not its head
        assertRejected(driver, "used.ring[0].id");
    }

    @Test
    void rejectsAUsedIdReturnedTwice() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        addRequest(driver, "a", 32);
        addRequest(driver, "b", 32);
        deviceUses(driver, 0, 0, 0, 1);
        assertEquals(1, driver.reap((token, len) -> { }, SIZE));
        deviceUses(driver, 1, 0, 0, 2);
        assertRejected(driver, "used.ring[1].id");
    }

    @Test
    void rejectsAUsedLenLargerThanTheWritablePart() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        addRequest(driver, "a", 32);
        deviceUses(driver, 0, 0, 33, 1);
        assertRejected(driver, "used.ring[0].len");
    }

    @Test
    void rejectsAUsedLenLargerThanTheWritablePartOfAnIndirectChain() {
        VirtqueueDriver<String> driver = driver(INDIRECT);
        addRequest(driver, "a", 32);
        deviceUses(driver, 0, 0, 33, 1);
        assertRejected(driver, "used.ring[0].len");
    }

    @Test
    void rejectsAUsedIdxJumpingMoreThanTheQueueSize() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        addRequest(driver, "a", 32);
        deviceUses(driver, 0, 0, 0, SIZE + 1);
        assertRejected(driver, "used.idx");
    }

    @Test
    void rejectsAUsedIdxMovingPastTheChainsInFlight() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        addRequest(driver, "a", 32);
        deviceUses(driver, 0, 0, 0, 2);
        assertRejected(driver, "used.idx");
    }

    @Test
    void shouldStopAtTheFirstBadEntryAfterConsumingTheGoodOnes() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        addRequest(driver, "a", 32);
        addRequest(driver, "b", 32);
        deviceUses(driver, 0, 0, 0, 1);
        deviceUses(driver, 1, 7, 0, 2);
        assertEquals(1, driver.reap((token, len) -> completed.add(token), SIZE));
        assertEquals(List.of("a"), completed);
        assertTrue(driver.isBroken());
        assertEquals("used.ring[1].id", driver.fault().field());
    }

    @Test
    void shouldUseOneDescriptorPerRequestWithIndirectTables() {
        VirtqueueDriver<String> driver = driver(INDIRECT);
        addRequest(driver, "a", 32);
        assertEquals(SIZE - 1, driver.numFree());
        MemorySegment desc = bed.deviceView(driver.descAddr(), 16);
        assertEquals(VirtqDescLayout.VIRTQ_DESC_F_INDIRECT, (short) VirtqDescLayout.FLAGS.get(desc, 0L));
        assertEquals(32, (int) VirtqDescLayout.LEN.get(desc, 0L));
        // A single buffer goes direct.
        sg.clear().out(bed.allocBuffer(), 8);
        assertTrue(driver.add(sg, "b"));
        assertEquals(SIZE - 2, driver.numFree());
    }

    @org.junit.jupiter.params.ParameterizedTest(name = "indirect={0}")
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void shouldPutPremappedBuffersInTheChainWithoutMappingThem(boolean indirect) {
        VirtqueueDriver<String> driver = driver(indirect ? INDIRECT : PLAIN);
        dev.airlock.dma.CoherentBuffer control = bed.dma.allocCoherent(64, 64);
        long data = bed.allocBuffer();
        long maps = bed.dma.maps();
        sg.clear().outMapped(control.dmaAddr(), 16).in(data, 512).inMapped(control.dmaAddr() + 16, 1);
        assertTrue(driver.add(sg, "a"));
        assertEquals(maps + 1, bed.dma.maps(), "only the data buffer is mapped");
        MemorySegment table = bed.deviceView(driver.descAddr(), 3L * VirtqDescLayout.DESC_LENGTH);
        if (indirect) {
            table = bed.deviceView((long) VirtqDescLayout.ADDR.get(table, 0L), 3L * VirtqDescLayout.DESC_LENGTH);
        }
        long header = (long) VirtqDescLayout.ADDR.get(table, 0L);
        long status = (long) VirtqDescLayout.ADDR.get(table, 2L * VirtqDescLayout.DESC_LENGTH);
        assertEquals(control.dmaAddr(), header);
        assertEquals(control.dmaAddr() + 16, status);
        assertEquals(1, (int) VirtqDescLayout.LEN.get(table, 2L * VirtqDescLayout.DESC_LENGTH));
        long unmaps = bed.dma.unmaps();
        deviceUses(driver, 0, 0, 513, 1);
        assertEquals(1, driver.reap((token, len) -> completed.add(token), SIZE));
        assertEquals(List.of("a"), completed);
        assertEquals(unmaps + 1, bed.dma.unmaps(), "only the data buffer is unmapped");
        assertEquals(0, bed.dma.liveMappings());
        bed.dma.freeCoherent(control);
    }

    @Test
    void shouldReturnFalseWhenTheQueueIsFull() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        for (int i = 0; i < SIZE / 2; i++) {
            addRequest(driver, "r" + i, 8);
        }
        assertEquals(0, driver.numFree());
        sg.clear().out(bed.allocBuffer(), 8);
        assertFalse(driver.add(sg, "full"));
        assertFalse(driver.isBroken());
        assertThrows(IllegalArgumentException.class, () -> {
            ScatterGather tooLong = new ScatterGather(SIZE + 1);
            for (int i = 0; i <= SIZE; i++) {
                tooLong.out(TestBed.SHARED_GPA, 1);
            }
            driver.add(tooLong, "too long");
        });
    }

    @Test
    void shouldUndoMappingsWhenOneFails() {
        for (long features : new long[] {PLAIN, INDIRECT}) {
            VirtqueueDriver<String> driver = driver(features);
            bed.dma.failAtMap(bed.dma.maps() + 2);
            sg.clear().out(bed.allocBuffer(), 8).out(bed.allocBuffer(), 8).in(bed.allocBuffer(), 8);
            assertThrows(DmaMappingException.class, () -> driver.add(sg, "x"));
            assertEquals(0, bed.dma.liveMappings());
            assertEquals(SIZE, driver.numFree());
            assertEquals(0, driver.inFlight());
            assertEquals(0, (short) VirtqAvailLayout.IDX.get(bed.deviceView(driver.availAddr(), 4), 0L));
            bed.dma.failAtMap(-1);
            driver.close();
        }
    }

    @Test
    void shouldRejectPrivateMemoryWithDirectDma() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        sg.clear().out(TestBed.PRIVATE_GPA, 8);
        assertThrows(DmaMappingException.class, () -> driver.add(sg, "private"));
        assertEquals(SIZE, driver.numFree());
    }

    @Test
    void shouldKickUnlessTheDeviceSetNoNotify() {
        VirtqueueDriver<String> driver = driver(PLAIN);
        assertFalse(driver.kickPrepare(), "nothing added");
        addRequest(driver, "a", 8);
        assertTrue(driver.kickPrepare());
        VirtqUsedLayout.FLAGS.set(usedRing(driver), 0L, (short) VirtqUsedLayout.VIRTQ_USED_F_NO_NOTIFY);
        addRequest(driver, "b", 8);
        assertFalse(driver.kickPrepare());
    }

    @Test
    void shouldKickWhenAvailIdxPassesAvailEvent() {
        VirtqueueDriver<String> driver = driver(EVENT_IDX);
        MemorySegment used = usedRing(driver);
        VirtqUsedLayout.U16.set(used, VirtqUsedLayout.availEventOffset(SIZE), (short) 1);
        addRequest(driver, "a", 8); // avail idx 0 -> 1: entry 0 published, device asked for entry 1
        assertFalse(driver.kickPrepare());
        addRequest(driver, "b", 8); // entry 1 published
        assertTrue(driver.kickPrepare());
        addRequest(driver, "c", 8);
        assertFalse(driver.kickPrepare(), "the device has not moved avail_event");
    }

    @Test
    void shouldReportPendingCompletionsWhenReenablingCallbacks() {
        for (long features : new long[] {PLAIN, EVENT_IDX}) {
            VirtqueueDriver<String> driver = driver(features);
            MemorySegment avail = bed.deviceView(driver.availAddr(), VirtqAvailLayout.lengthBytes(SIZE));
            driver.disableCallbacks();
            if (features == PLAIN) {
                assertEquals(VirtqAvailLayout.VIRTQ_AVAIL_F_NO_INTERRUPT, (short) VirtqAvailLayout.FLAGS.get(avail, 0L));
            }
            assertTrue(driver.enableCallbacks());
            assertEquals(0, (short) VirtqAvailLayout.FLAGS.get(avail, 0L));
            addRequest(driver, "a", 8);
            deviceUses(driver, 0, 0, 0, 1);
            assertFalse(driver.enableCallbacks());
            assertEquals(1, driver.reap((token, len) -> { }, SIZE));
            assertTrue(driver.enableCallbacks());
            driver.close();
        }
    }

    @Test
    void shouldNotTouchTheRingsOfABrokenQueue() {
        VirtqueueDriver<String> driver = driver(EVENT_IDX);
        MemorySegment avail = bed.deviceView(driver.availAddr(), VirtqAvailLayout.lengthBytes(SIZE));
        addRequest(driver, "a", 8);
        driver.markBroken(new VirtioFault("test", "used.idx", 0, "peer gone"));
        short usedEvent = (short) VirtqAvailLayout.U16.get(avail, VirtqAvailLayout.usedEventOffset(SIZE));
        driver.disableCallbacks();
        assertFalse(driver.enableCallbacks(), "a broken queue is never idle: the caller must check isBroken");
        assertFalse(driver.kickPrepare());
        assertEquals(usedEvent, (short) VirtqAvailLayout.U16.get(avail, VirtqAvailLayout.usedEventOffset(SIZE)));
        assertEquals(0, driver.reap((token, len) -> { }, SIZE));
        assertTrue(driver.isBroken());
        driver.close();
    }

    @Test
    void shouldDetachUnusedRequestsAndStartAfresh() {
        VirtqueueDriver<String> driver = driver(INDIRECT);
        addRequest(driver, "a", 8);
        addRequest(driver, "b", 8);
        sg.clear().in(bed.allocBuffer(), 8);
        assertTrue(driver.add(sg, "c"));
        deviceUses(driver, 0, 0, SIZE + 100, 1); // bad length: breaks the queue
        driver.reap((token, len) -> { }, SIZE);
        assertTrue(driver.isBroken());
        List<String> detached = new ArrayList<>();
        assertEquals(3, driver.detachUnused(detached::add));
        assertEquals(List.of("a", "b", "c"), detached);
        assertEquals(0, bed.dma.liveMappings());
        assertFalse(driver.isBroken());
        assertNull(driver.fault());
        assertEquals(SIZE, driver.numFree());
        // Usable again, from index 0.
        addRequest(driver, "d", 8);
        deviceUses(driver, 0, 0, 8, 1);
        assertEquals(1, driver.reap((token, len) -> completed.add(token), SIZE));
        assertEquals(List.of("d"), completed);
        driver.close();
        assertEquals(0, bed.dma.coherentLive());
        assertThrows(IllegalStateException.class, () -> driver.add(sg, "closed"));
    }
}
