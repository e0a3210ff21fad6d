package dev.airlock.vhostuser;

import dev.airlock.memory.SharedMemory;
import dev.airlock.memory.sys.Linux;
import dev.airlock.virtio.VirtioFeatures;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static dev.airlock.vhostuser.TestFrontend.state;
import static dev.airlock.vhostuser.TestFrontend.u64;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The protocol end to end against a Java front-end: real memfd memory, real rings, real eventfds. */
class VhostUserBackendTest extends VhostUserTestSupport {
    @TempDir
    Path dir;

    @BeforeEach
    void setUp() {
        startBackend(dir);
    }

    @AfterEach
    void tearDown() {
        stopBackend();
    }

    private static byte[] reversed(byte[] data) {
        byte[] r = new byte[data.length];
        for (int i = 0; i < data.length; i++) {
            r[i] = data[data.length - 1 - i];
        }
        return r;
    }

    @Test
    void shouldEchoThroughRealRingsAndStopOnGetVringBase() {
        assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
            try (TestFrontend f = new TestFrontend(socketPath)) {
                f.setUp();
                byte[] data = "hello, vhost-user".getBytes(StandardCharsets.US_ASCII);
                f.echoRequest(0, data);
                f.makeAvailable(0);
                f.kick();
                assertTrue(f.awaitUsed(1, 5000));
                assertEquals(0, f.usedId(0));
                assertEquals(data.length, f.usedLen(0));
                assertArrayEquals(reversed(data), f.echoReply(0, data.length));
                assertTrue(TestFrontend.drain(f.callFd) > 0, "the call eventfd was not signalled");

                f.echoRequest(2, data);
                f.makeAvailable(2);
                f.kick();
                assertTrue(f.awaitUsed(2, 5000));

                TestFrontend.Reply base = f.call(VhostUserRequest.GET_VRING_BASE, state(0, 0));
                assertEquals(VhostUserRequest.GET_VRING_BASE, base.request());
                assertEquals(0, base.u32(0));
                assertEquals(2, base.u32(4), "the next avail position");
                EchoModel model = models.get(0);
                assertEquals(1, model.activations.get());
                assertEquals(1, model.resets.get());
                assertFalse(VirtioFeatures.has(model.negotiated, VhostUserRequest.F_PROTOCOL_FEATURES));

                // A stopped ring is not processed.
                f.echoRequest(4, data);
                f.makeAvailable(4);
                f.kick();
                Thread.sleep(100);
                assertEquals(2, f.usedIdx());

                // Restarted at the base it reported, it continues.
                f.send(VhostUserRequest.SET_VRING_BASE, state(0, base.u32(4)));
                f.send(VhostUserRequest.SET_VRING_KICK, u64(0), f.kickFd);
                assertTrue(f.awaitUsed(3, 5000));
                assertEquals(4, f.usedId(2));
            }
            assertNextConnectionServed();
        });
    }

    @Test
    void shouldProcessOnlyOnceTheRingIsEnabled() throws Exception {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.negotiate(-1L);
            f.send(VhostUserRequest.SET_VRING_NUM, state(0, TestFrontend.QUEUE_SIZE));
            f.send(VhostUserRequest.SET_VRING_ADDR, TestFrontend.addr(0, 0, TestFrontend.UVA_BASE + TestFrontend.DESC_OFFSET,
                    TestFrontend.UVA_BASE + TestFrontend.USED_OFFSET, TestFrontend.UVA_BASE + TestFrontend.AVAIL_OFFSET));
            f.send(VhostUserRequest.SET_VRING_KICK, u64(0), f.kickFd);
            f.send(VhostUserRequest.SET_VRING_CALL, u64(0), f.callFd);
            byte[] data = {1, 2, 3};
            f.echoRequest(0, data);
            f.makeAvailable(0);
            f.kick();
            Thread.sleep(200);
            assertEquals(0, f.usedIdx(), "a started but disabled ring must not be processed");
            f.send(VhostUserRequest.SET_VRING_ENABLE, state(0, 1));
            assertTrue(f.awaitUsed(1, 5000), "work made available before enabling is picked up");
            assertArrayEquals(new byte[] {3, 2, 1}, f.echoReply(0, 3));
        }
    }

    @Test
    void shouldOfferFeaturesWithoutWhatVhostUserCannotDo() {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            long features = f.call(VhostUserRequest.GET_FEATURES, new byte[0]).u64();
            assertTrue(VirtioFeatures.has(features, VhostUserRequest.F_PROTOCOL_FEATURES));
            assertTrue(VirtioFeatures.has(features, VirtioFeatures.VIRTIO_F_VERSION_1));
            assertTrue(VirtioFeatures.has(features, VirtioFeatures.VIRTIO_F_EVENT_IDX));
            assertFalse(VirtioFeatures.has(features, VirtioFeatures.VIRTIO_F_RING_PACKED));
            long protocol = f.call(VhostUserRequest.GET_PROTOCOL_FEATURES, new byte[0]).u64();
            assertEquals(VhostUserRequest.SUPPORTED_PROTOCOL_FEATURES, protocol);
            f.send(VhostUserRequest.SET_PROTOCOL_FEATURES, u64(protocol));
            assertEquals(EchoModel.QUEUES, f.call(VhostUserRequest.GET_QUEUE_NUM, new byte[0]).u64());
            assertEquals(GuestMemoryTable.MAX_REGIONS, f.call(VhostUserRequest.GET_MAX_MEM_SLOTS, new byte[0]).u64());
            f.send(VhostUserRequest.SET_OWNER, 1 | 8, new byte[0]);
            assertEquals(0, f.receive().u64(), "REPLY_ACK");
        }
    }

    private static byte[] config(int offset, int size, int flags, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(12 + size).order(ByteOrder.nativeOrder()).putInt(offset).putInt(size).putInt(flags);
        if (data != null) {
            b.put(data);
        }
        return b.array();
    }

    @Test
    void shouldReadAndWriteTheConfigurationThroughTheModel() {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.negotiate(-1L);
            TestFrontend.Reply reply = f.call(VhostUserRequest.GET_CONFIG, config(0, 12, 0, null));
            assertEquals(24, reply.payload().length);
            assertEquals(0xfeedbeef, reply.u32(16));
            assertEquals(0, reply.u32(20), "bytes past the model's space read as zero");
            f.send(VhostUserRequest.SET_CONFIG, 1 | 8, config(0, 4, 0, new byte[] {0x44, 0x33, 0x22, 0x11}));
            assertEquals(0, f.receive().u64());
            assertEquals(0x11223344, models.get(0).tag());
            f.send(VhostUserRequest.SET_CONFIG, 1 | 8, config(4, 4, 0, new byte[4]));
            assertNotEquals(0, f.receive().u64(), "a read-only field is refused");
            assertEquals(0x11223344, f.call(VhostUserRequest.GET_CONFIG, config(0, 4, 0, null)).u32(12));
        }
    }

    @Test
    void shouldBreakOnlyTheQueueOnADescriptorOutsideMemory() throws Exception {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.setUp();
            f.desc(0, TestFrontend.GPA_BASE + TestFrontend.MEM_BYTES + 4096, 64, 2, 0);
            f.makeAvailable(0);
            f.kick();
            long deadline = System.currentTimeMillis() + 5000;
            while (TestFrontend.drain(f.errFd) == 0) {
                assertTrue(System.currentTimeMillis() < deadline, "the error eventfd was not signalled");
                Thread.sleep(5);
            }
            assertEquals(0, f.usedIdx());
            assertTrue(models.get(0).faults.get(0).contains("desc[0].addr"), models.get(0).faults.toString());
            assertEquals(VhostUserRequest.GET_FEATURES, f.call(VhostUserRequest.GET_FEATURES, new byte[0]).request(),
                    "the connection stays up");
        }
    }

    @Test
    void shouldUnmapAndCloseEverythingWhenAConnectionEnds() throws Exception {
        // Warm up (class loading, thread-local buffers) with one connection first.
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.setUp();
        }
        assertTrue(backend.awaitConnectionsServed(1, 10, TimeUnit.SECONDS));
        long fdsBefore = openFds();
        try (SharedMemory guest = SharedMemory.create("vu-leak-check", TestFrontend.MEM_BYTES)) {
            long mappingsBefore = mappingsOf("vu-leak-check");
            try (TestFrontend f = new TestFrontend(socketPath, guest)) {
                f.setUp();
                TestFrontend.Reply inflight = f.call(VhostUserRequest.GET_INFLIGHT_FD, TestFrontend.inflight(0, 0, 1, TestFrontend.QUEUE_SIZE));
                assertEquals(1, inflight.fds().length);
                Linux.close(inflight.fds()[0]);
                assertTrue(mappingsOf("vu-leak-check") > mappingsBefore, "the back-end maps guest memory");
            }
            assertTrue(backend.awaitConnectionsServed(2, 10, TimeUnit.SECONDS));
            assertEquals(mappingsBefore, mappingsOf("vu-leak-check"), "guest memory still mapped");
        }
        assertEquals(fdsBefore, openFds(), "descriptors leaked");
    }

    @Test
    void shouldApplyAddAndRemoveMemoryRegions() throws Exception {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            long protocol = f.call(VhostUserRequest.GET_PROTOCOL_FEATURES, new byte[0]).u64();
            f.send(VhostUserRequest.SET_PROTOCOL_FEATURES, u64(protocol));
            f.send(VhostUserRequest.SET_FEATURES, u64(f.call(VhostUserRequest.GET_FEATURES, new byte[0]).u64()));
            f.send(VhostUserRequest.ADD_MEM_REG, 1 | 8, TestFrontend.singleRegion(TestFrontend.GPA_BASE, TestFrontend.MEM_BYTES,
                    TestFrontend.UVA_BASE, 0), f.guest.fd());
            assertEquals(0, f.receive().u64());
            f.startQueue(0);
            f.echoRequest(0, new byte[] {7, 8});
            f.makeAvailable(0);
            f.kick();
            assertTrue(f.awaitUsed(1, 5000));
            f.send(VhostUserRequest.REM_MEM_REG, 1 | 8, TestFrontend.singleRegion(TestFrontend.GPA_BASE, TestFrontend.MEM_BYTES,
                    TestFrontend.UVA_BASE, 0));
            assertEquals(0, f.receive().u64());
            // The ring lost its memory: it cannot start again, and the back-end says so by closing.
            f.send(VhostUserRequest.ADD_MEM_REG, TestFrontend.singleRegion(TestFrontend.GPA_BASE + TestFrontend.MEM_BYTES,
                    TestFrontend.MEM_BYTES, TestFrontend.UVA_BASE + TestFrontend.MEM_BYTES, 0), f.guest.fd());
            assertClosedFor(f, "memory table.desc_user_addr");
        }
    }

    @Test
    void shouldResubmitInFlightRequestsAfterTheBackendIsReplaced() {
        assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
            try (SharedMemory guest = SharedMemory.create("vu-inflight-guest", TestFrontend.MEM_BYTES)) {
                int inflightFd;
                long inflightSize;
                byte[][] data = new byte[4][];
                try (TestFrontend f = new TestFrontend(socketPath, guest)) {
                    f.negotiate(-1L);
                    TestFrontend.Reply reply = f.call(VhostUserRequest.GET_INFLIGHT_FD, TestFrontend.inflight(0, 0, 1, TestFrontend.QUEUE_SIZE));
                    assertEquals(1, reply.fds().length);
                    inflightFd = reply.fds()[0];
                    inflightSize = ByteBuffer.wrap(reply.payload()).order(ByteOrder.nativeOrder()).getLong(0);
                    f.send(VhostUserRequest.SET_INFLIGHT_FD, TestFrontend.inflight(inflightSize, 0, 1, TestFrontend.QUEUE_SIZE), inflightFd);
                    f.startQueue(0);
                    while (models.isEmpty()) {
                        Thread.sleep(1);
                    }
                    EchoModel first = models.get(0);
                    // The first back-end completes head 0, then takes 2, 4 and 6 and never completes them.
                    data[0] = new byte[] {1, 2, 3};
                    f.echoRequest(0, data[0]);
                    f.makeAvailable(0);
                    f.kick();
                    assertTrue(f.awaitUsed(1, 5000));
                    first.hold = true;
                    for (int head = 2; head <= 6; head += 2) {
                        data[head / 2] = new byte[] {(byte) head, 10, 20, 30};
                        f.echoRequest(head, data[head / 2]);
                        f.makeAvailable(head);
                    }
                    f.kick();
                    while (first.heads.size() < 4) {
                        Thread.sleep(1);
                    }
                }
                // The front-end noticed the back-end was gone; a new one is connected.
                assertTrue(backend.awaitConnectionsServed(1, 10, TimeUnit.SECONDS));
                try (TestFrontend f = new TestFrontend(socketPath, guest)) {
                    f.negotiate(-1L);
                    f.send(VhostUserRequest.SET_INFLIGHT_FD, TestFrontend.inflight(inflightSize, 0, 1, TestFrontend.QUEUE_SIZE), inflightFd);
                    f.setAvailIdx(4);
                    f.startQueue(f.usedIdx()); // QEMU restarts a crashed ring at the used idx
                    f.echoRequest(8, new byte[] {9});
                    f.makeAvailable(8);
                    f.kick();
                    assertTrue(f.awaitUsed(5, 5000), "used idx " + f.usedIdx());
                    EchoModel second = models.get(1);
                    assertEquals(List.of(2, 4, 6, 8), second.heads, "resubmitted in order, then the new request");
                    for (int head = 2; head <= 6; head += 2) {
                        assertArrayEquals(reversed(data[head / 2]), f.echoReply(head, 4));
                    }
                    assertArrayEquals(new byte[] {9}, f.echoReply(8, 1));
                } finally {
                    Linux.close(inflightFd);
                }
            }
        });
    }
    @Test
    void shouldServeThousandsOfRequestsInOrderOverOneRing() {
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            try (TestFrontend f = new TestFrontend(socketPath)) {
                f.setUp();
                int rounds = 5000;
                long start = System.nanoTime();
                for (int i = 0; i < rounds; i++) {
                    int head = (i % 8) * 2;
                    byte[] data = {(byte) i, (byte) (i >> 8), 42};
                    f.echoRequest(head, data);
                    f.makeAvailable(head);
                    f.kick();
                    assertTrue(f.awaitUsedSpinning((i + 1) & 0xffff, 5000), "request " + i);
                    assertArrayEquals(reversed(data), f.echoReply(head, 3));
                }
                long ns = System.nanoTime() - start;
                System.out.printf("[vhost-user] %d echo round trips, mean %.1f us (kick eventfd -> poll thread -> model -> call eventfd)%n",
                        rounds, ns / 1e3 / rounds);
            }
        });
    }
}
