package dev.airlock.vhostuser;

import dev.airlock.memory.SharedMemory;
import dev.airlock.memory.sys.Linux;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static dev.airlock.vhostuser.TestFrontend.GPA_BASE;
import static dev.airlock.vhostuser.TestFrontend.MEM_BYTES;
import static dev.airlock.vhostuser.TestFrontend.UVA_BASE;
import static dev.airlock.vhostuser.TestFrontend.addr;
import static dev.airlock.vhostuser.TestFrontend.memTable;
import static dev.airlock.vhostuser.TestFrontend.state;
import static dev.airlock.vhostuser.TestFrontend.u64;

/** Hostile messages: each closes its connection with an error naming the field, and the next connection is served. */
class VhostUserHostileTest extends VhostUserTestSupport {
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

    private TestFrontend negotiated() {
        TestFrontend f = new TestFrontend(socketPath);
        f.negotiate(-1L);
        return f;
    }

    @Test
    void rejectsAWrongPayloadSize() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_NUM, new byte[4]);
            assertClosedFor(f, "SET_VRING_NUM.size");
        }
    }

    @Test
    void rejectsAPayloadForARequestWithout() {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.GET_FEATURES, new byte[8]);
            assertClosedFor(f, "GET_FEATURES.size");
        }
    }

    @Test
    void rejectsAHeaderSizeBeyondTheLimit() {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_CONFIG, new byte[5000]);
            assertClosedFor(f, "SET_CONFIG.size");
        }
    }

    @Test
    void rejectsAMissingFd() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_KICK, u64(0));
            assertClosedFor(f, "SET_VRING_KICK.fds");
        }
    }

    @Test
    void rejectsAnFdTogetherWithTheNoFdFlag() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_CALL, u64(0x100), f.callFd);
            assertClosedFor(f, "SET_VRING_CALL.fds");
        }
    }

    @Test
    void rejectsAnExtraFd() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_NUM, state(0, 16), f.kickFd);
            assertClosedFor(f, "SET_VRING_NUM.fds");
        }
    }

    @Test
    void rejectsACallFdThatIsNotAnEventFd() {
        try (TestFrontend f = negotiated()) {
            int file = Linux.memfdCreate("not-an-eventfd", 4096, Linux.MFD_CLOEXEC);
            try {
                f.send(VhostUserRequest.SET_VRING_CALL, u64(0), file); // a call's 8-byte write would land in a file
                assertClosedFor(f, "SET_VRING_CALL.fd");
            } finally {
                Linux.close(file);
            }
        }
    }

    @Test
    void rejectsABlockingEventFd() {
        try (TestFrontend f = negotiated()) {
            int blocking = Linux.eventfd(0, Linux.EFD_CLOEXEC);
            try {
                f.send(VhostUserRequest.SET_VRING_ERR, u64(0), blocking); // filled to the top, a write would block
                assertClosedFor(f, "SET_VRING_ERR.fd");
            } finally {
                Linux.close(blocking);
            }
        }
    }

    @Test
    void rejectsAKickWithoutFdBecausePollingIsNotSupported() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_KICK, u64(0x100));
            assertClosedFor(f, "SET_VRING_KICK.u64");
        }
    }

    @Test
    void rejectsAQueueIndexOutOfRange() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_NUM, state(EchoModel.QUEUES, 16));
            assertClosedFor(f, "SET_VRING_NUM.index");
        }
    }

    @Test
    void rejectsAnFdMessageForAQueueOutOfRange() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_CALL, u64(0xff), f.callFd);
            assertClosedFor(f, "SET_VRING_CALL.u64");
        }
    }

    @Test
    void rejectsReservedBitsInAVringFdMessage() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_CALL, u64(1L << 40), f.callFd);
            assertClosedFor(f, "SET_VRING_CALL.u64");
        }
    }

    @Test
    void rejectsAQueueSizeThatIsNotAPowerOfTwoOrTooLarge() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_NUM, state(0, 12));
            assertClosedFor(f, "SET_VRING_NUM.num");
        }
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_NUM, state(0, EchoModel.MAX_QUEUE_SIZE * 2));
            assertClosedFor(f, "SET_VRING_NUM.num");
        }
    }

    @Test
    void rejectsABaseBeyondSixteenBits() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_BASE, state(0, 0x10000));
            assertClosedFor(f, "SET_VRING_BASE.num");
        }
    }

    @Test
    void rejectsAnEnableValueOtherThanZeroOrOne() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_ENABLE, state(0, 2));
            assertClosedFor(f, "SET_VRING_ENABLE.num");
        }
    }

    @Test
    void rejectsAnUnalignedRing() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_NUM, state(0, 16));
            f.send(VhostUserRequest.SET_VRING_ADDR, addr(0, 0, UVA_BASE + 0x1008, UVA_BASE + 0x4000, UVA_BASE + 0x3000));
            assertClosedFor(f, "SET_VRING_ADDR.desc_user_addr");
        }
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_ADDR, addr(0, 0, UVA_BASE + 0x1000, UVA_BASE + 0x4002, UVA_BASE + 0x3000));
            assertClosedFor(f, "SET_VRING_ADDR.used_user_addr");
        }
    }

    @Test
    void rejectsARingOutsideMemory() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_NUM, state(0, 16));
            f.send(VhostUserRequest.SET_VRING_ADDR, addr(0, 0, UVA_BASE + 0x1000, UVA_BASE + MEM_BYTES - 8, UVA_BASE + 0x3000));
            assertClosedFor(f, "SET_VRING_ADDR.used_user_addr");
        }
    }

    @Test
    void rejectsARingOutsideMemoryWhenItStarts() {
        try (TestFrontend f = negotiated()) {
            // Addresses set before the size: checked when the kick starts the ring.
            f.send(VhostUserRequest.SET_VRING_ADDR, addr(0, 0, UVA_BASE - 0x1000, UVA_BASE + 0x4000, UVA_BASE + 0x3000));
            f.send(VhostUserRequest.SET_VRING_NUM, state(0, 16));
            f.send(VhostUserRequest.SET_VRING_KICK, u64(0), f.kickFd);
            assertClosedFor(f, "SET_VRING_KICK.desc_user_addr");
        }
    }

    @Test
    void rejectsLoggingFlagsInTheRingAddress() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_VRING_ADDR, addr(0, 1, UVA_BASE + 0x1000, UVA_BASE + 0x4000, UVA_BASE + 0x3000));
            assertClosedFor(f, "SET_VRING_ADDR.flags");
        }
    }

    @Test
    void rejectsChangingAStartedRing() {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.setUp();
            f.send(VhostUserRequest.SET_VRING_BASE, state(0, 3));
            assertClosedFor(f, "SET_VRING_BASE.num");
        }
    }

    @Test
    void rejectsAnUnknownRequest() {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(99, new byte[0]);
            assertClosedFor(f, "request 99.request");
        }
    }

    @Test
    void rejectsAKnownButUnsupportedRequest() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.SET_LOG_BASE, u64(0));
            assertClosedFor(f, "SET_LOG_BASE.request");
        }
    }

    @Test
    void rejectsBadFlags() {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.GET_FEATURES, 2, new byte[0]);
            assertClosedFor(f, "GET_FEATURES.flags");
        }
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.GET_FEATURES, 1 | 4, new byte[0]);
            assertClosedFor(f, "GET_FEATURES.flags");
        }
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.GET_FEATURES, 1 | 0x100, new byte[0]);
            assertClosedFor(f, "GET_FEATURES.flags");
        }
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_OWNER, 1 | 8, new byte[0]); // NEED_REPLY before REPLY_ACK was negotiated
            assertClosedFor(f, "SET_OWNER.flags");
        }
    }

    @Test
    void rejectsFeaturesThatWereNotOffered() {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_FEATURES, u64(1L << 34)); // VIRTIO_F_RING_PACKED: the model offers it, vhost-user here does not
            assertClosedFor(f, "SET_FEATURES.u64");
        }
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_PROTOCOL_FEATURES, u64(1L << 1)); // LOG_SHMFD
            assertClosedFor(f, "SET_PROTOCOL_FEATURES.u64");
        }
    }

    @Test
    void rejectsARequestWhoseProtocolFeatureWasNotNegotiated() {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.GET_QUEUE_NUM, new byte[0]);
            assertClosedFor(f, "GET_QUEUE_NUM.request");
        }
    }

    @Test
    void rejectsBadMemoryTables() {
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_MEM_TABLE, memTable());
            assertClosedFor(f, "SET_MEM_TABLE.nregions");
        }
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_MEM_TABLE, memTable(new long[] {GPA_BASE, 4096, UVA_BASE, 0},
                    new long[] {GPA_BASE + 8192, 4096, UVA_BASE + 8192, 8192}), f.guest.fd());
            assertClosedFor(f, "SET_MEM_TABLE.fds");
        }
        try (TestFrontend f = new TestFrontend(socketPath)) {
            byte[] table = memTable(new long[] {GPA_BASE, 4096, UVA_BASE, 0});
            f.send(VhostUserRequest.SET_MEM_TABLE, java.util.Arrays.copyOf(table, table.length + 32), f.guest.fd());
            assertClosedFor(f, "SET_MEM_TABLE.size");
        }
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_MEM_TABLE, memTable(new long[] {GPA_BASE, 8192, UVA_BASE, 0},
                    new long[] {GPA_BASE + 4096, 4096, UVA_BASE + 65536, 8192}), f.guest.fd(), f.guest.fd());
            assertClosedFor(f, "SET_MEM_TABLE.regions[1].guest_phys_addr");
        }
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_MEM_TABLE, memTable(new long[] {GPA_BASE, 8192, UVA_BASE, 0},
                    new long[] {GPA_BASE + 65536, 4096, UVA_BASE + 4096, 8192}), f.guest.fd(), f.guest.fd());
            assertClosedFor(f, "SET_MEM_TABLE.regions[1].userspace_addr");
        }
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_MEM_TABLE, memTable(new long[] {GPA_BASE, MEM_BYTES, UVA_BASE, 4096}), f.guest.fd());
            assertClosedFor(f, "SET_MEM_TABLE.regions[0].memory_size");
        }
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_MEM_TABLE, memTable(new long[] {-4096, 8192, UVA_BASE, 0}), f.guest.fd());
            assertClosedFor(f, "SET_MEM_TABLE.regions[0].guest_phys_addr");
        }
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_MEM_TABLE, memTable(new long[] {GPA_BASE, 0, UVA_BASE, 0}), f.guest.fd());
            assertClosedFor(f, "SET_MEM_TABLE.regions[0].memory_size");
        }
    }

    @Test
    void rejectsANonMemfdRegionFdThatCannotBeMapped() {
        int eventfd = Linux.eventfd(0, Linux.EFD_CLOEXEC);
        try (TestFrontend f = new TestFrontend(socketPath)) {
            f.send(VhostUserRequest.SET_MEM_TABLE, memTable(new long[] {GPA_BASE, 4096, UVA_BASE, 0}), eventfd);
            assertClosedFor(f, "SET_MEM_TABLE.regions[0]");
        } finally {
            Linux.close(eventfd);
        }
    }

    @Test
    void rejectsRemovingARegionThatIsNotThere() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.REM_MEM_REG, TestFrontend.singleRegion(GPA_BASE, 4096, UVA_BASE, 0));
            assertClosedFor(f, "REM_MEM_REG.region.guest_phys_addr");
        }
    }

    @Test
    void rejectsBadInflightDescriptions() {
        try (TestFrontend f = negotiated()) {
            f.send(VhostUserRequest.GET_INFLIGHT_FD, TestFrontend.inflight(0, 0, EchoModel.QUEUES + 1, 16));
            assertClosedFor(f, "GET_INFLIGHT_FD.num_queues");
        }
        try (TestFrontend f = negotiated(); SharedMemory buffer = SharedMemory.create("inflight", 4096)) {
            f.send(VhostUserRequest.SET_INFLIGHT_FD, TestFrontend.inflight(4096, 0, 1, 16), buffer.fd());
            assertClosedFor(f, "SET_INFLIGHT_FD.mmap_size");
        }
    }

    @Test
    void rejectsAConfigAccessBeyondTheLimit() {
        try (TestFrontend f = negotiated()) {
            byte[] payload = java.nio.ByteBuffer.allocate(12 + 8).order(java.nio.ByteOrder.nativeOrder())
                    .putInt(252).putInt(8).putInt(0).array();
            f.send(VhostUserRequest.GET_CONFIG, payload);
            assertClosedFor(f, "GET_CONFIG.size");
        }
    }
    @Test
    void rejectsAHostileInflightRegionWhenTheRingStarts() {
        long length = InflightBuffer.lengthBytes(1, TestFrontend.QUEUE_SIZE);
        try (SharedMemory buffer = SharedMemory.create("inflight", (length + 4095) & -4096L); TestFrontend f = negotiated()) {
            buffer.segment().set(java.lang.foreign.ValueLayout.JAVA_SHORT, InflightQueueRegionLayout.VERSION_OFFSET, (short) 9);
            f.send(VhostUserRequest.SET_INFLIGHT_FD, TestFrontend.inflight(length, 0, 1, TestFrontend.QUEUE_SIZE), buffer.fd());
            f.startQueue(0);
            assertClosedFor(f, "inflight.queue0.version");
        }
    }
}
