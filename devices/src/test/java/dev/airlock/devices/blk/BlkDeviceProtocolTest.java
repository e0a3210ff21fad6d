package dev.airlock.devices.blk;

import dev.airlock.transport.TransportKind;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDriver;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The backend against a raw driver that writes requests by hand: what it offers, hostile requests
 * answered with a status, and a chain without a status byte that sets DEVICE_NEEDS_RESET.
 */
class BlkDeviceProtocolTest {
    private static final long RING = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX);

    @TempDir
    Path dir;

    private final BlkHarness h = new BlkHarness();
    private BlkDevice backend;

    @AfterEach
    void close() throws Exception {
        h.close();
        if (backend != null) {
            backend.close();
        }
    }

    private VirtioFrontend raw(TransportKind kind, BlkOptions.Builder options, long features) throws Exception {
        backend = BlkDevice.open(options.build());
        VirtioFrontend fe = h.attach(kind, backend);
        fe.initialize(BlkDevice.DEVICE_ID, features, 16);
        return fe;
    }

    /** Sends one chain and waits for its used entry; returns the status byte at {@code statusGpa}. */
    private int roundTrip(VirtioFrontend fe, ScatterGather sg, long statusGpa) throws InterruptedException {
        Semaphore used = new Semaphore(0);
        fe.setListener(used::release);
        VirtqueueDriver<Integer> q = fe.queue(0);
        h.ram(statusGpa, 1).set(ValueLayout.JAVA_BYTE, 0, (byte) 0x77);
        assertTrue(q.add(sg, 1));
        fe.kick(0);
        int[] got = {0};
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (got[0] == 0 && System.nanoTime() < deadline) {
            q.reap((token, len) -> got[0] = 1, 1);
            if (got[0] == 0) {
                used.tryAcquire(10, TimeUnit.MILLISECONDS);
            }
        }
        assertEquals(1, got[0], "used entry within 5 s");
        return h.ram(statusGpa, 1).get(ValueLayout.JAVA_BYTE, 0) & 0xff;
    }

    private static long header(BlkHarness h, long gpa, int type, long sector) {
        BlkRequestLayout.writeHeader(h.ram(gpa, 16), type, sector);
        return gpa;
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldOfferTheBlockFeaturesAndConfiguration(TransportKind kind) throws Exception {
        VirtioFrontend fe = raw(kind, BlkOptions.builder(BlkHarness.image(dir, "d.img", 3 << 20, 0)).numQueues(2).segMax(9)
                .sizeMax(8192).blkSize(4096), BlkDriverLoop.SUPPORTED_FEATURES);
        long f = fe.negotiatedFeatures();
        for (int bit : new int[] {BlkConfigLayout.VIRTIO_BLK_F_SIZE_MAX, BlkConfigLayout.VIRTIO_BLK_F_SEG_MAX, BlkConfigLayout.VIRTIO_BLK_F_BLK_SIZE,
                BlkConfigLayout.VIRTIO_BLK_F_FLUSH, BlkConfigLayout.VIRTIO_BLK_F_DISCARD, BlkConfigLayout.VIRTIO_BLK_F_WRITE_ZEROES,
                BlkConfigLayout.VIRTIO_BLK_F_MQ, VirtioFeatures.VIRTIO_F_EVENT_IDX, VirtioFeatures.VIRTIO_F_INDIRECT_DESC}) {
            assertTrue(VirtioFeatures.has(f, bit), "feature " + bit);
        }
        assertTrue(!VirtioFeatures.has(f, BlkConfigLayout.VIRTIO_BLK_F_RO));
        BlockDeviceInfo info = BlockDeviceInfo.read(fe, f, 1);
        assertEquals(6144, info.capacitySectors());
        assertEquals(4096, info.blockSize());
        assertEquals(9, info.segMax());
        assertEquals(8192, info.sizeMax());
        byte[] nq = new byte[2];
        fe.readConfig(BlkConfigLayout.NUM_QUEUES_OFFSET, nq);
        assertEquals(2, nq[0]);
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldAnswerAnUnknownTypeWithUnsuppAndKeepRunning(TransportKind kind) throws Exception {
        VirtioFrontend fe = raw(kind, BlkOptions.builder(BlkHarness.image(dir, "d.img", 1 << 20, 0)), RING);
        ScatterGather sg = new ScatterGather(2).out(header(h, 0, 77, 0), 16).in(64, 1);
        assertEquals(BlkRequestLayout.VIRTIO_BLK_S_UNSUPP, roundTrip(fe, sg, 64));
        sg = new ScatterGather(2).out(header(h, 0, BlkRequestLayout.VIRTIO_BLK_T_IN, 1L << 40), 16).in(4096, 512).in(64, 1);
        assertEquals(BlkRequestLayout.VIRTIO_BLK_S_IOERR, roundTrip(fe, sg, 64), "far past the capacity");
        sg = new ScatterGather(2).out(header(h, 0, BlkRequestLayout.VIRTIO_BLK_T_FLUSH, 0), 16).in(64, 1);
        assertEquals(BlkRequestLayout.VIRTIO_BLK_S_UNSUPP, roundTrip(fe, sg, 64), "FLUSH was not negotiated");
        sg = new ScatterGather(2).out(header(h, 0, BlkRequestLayout.VIRTIO_BLK_T_IN, 0), 16).in(4096, 512).in(64, 1);
        assertEquals(BlkRequestLayout.VIRTIO_BLK_S_OK, roundTrip(fe, sg, 64));
        assertEquals(2, backend.metrics().unsupported(), "two UNSUPP answers");
        assertEquals(1, backend.metrics().ioErrors());
        assertEquals(1, backend.metrics().reads());
        assertEquals(0, h.world.deviceHost().faultCount(h.guest.id(), 0));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldSetNeedsResetForAChainWithoutAStatusByte(TransportKind kind) throws Exception {
        VirtioFrontend fe = raw(kind, BlkOptions.builder(BlkHarness.image(dir, "d.img", 1 << 20, 0)), RING);
        Semaphore changed = new Semaphore(0);
        fe.setListener(new VirtioFrontend.Listener() {
            @Override
            public void onUsedBuffers() {
            }

            @Override
            public void onConfigChange() {
                changed.release();
            }
        });
        assertTrue(fe.queue(0).add(new ScatterGather(1).out(header(h, 0, BlkRequestLayout.VIRTIO_BLK_T_OUT, 0), 16), 1));
        fe.kick(0);
        assertTrue(changed.tryAcquire(5, TimeUnit.SECONDS), "configuration change notification");
        assertTrue((fe.status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0, DeviceStatus.describe(fe.status()));
        assertEquals(1, backend.metrics().faults());
        assertTrue(h.world.deviceHost().lastFault(h.guest.id(), 0).reason().contains("status"),
                h.world.deviceHost().lastFault(h.guest.id(), 0).message());
        fe.reset();
        fe.initialize(BlkDevice.DEVICE_ID, RING, 16);
        ScatterGather sg = new ScatterGather(2).out(header(h, 0, BlkRequestLayout.VIRTIO_BLK_T_IN, 0), 16).in(4096, 512).in(64, 1);
        assertEquals(BlkRequestLayout.VIRTIO_BLK_S_OK, roundTrip(fe, sg, 64), "works again after a reset");
    }
}
