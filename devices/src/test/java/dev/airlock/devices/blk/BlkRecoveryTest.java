package dev.airlock.devices.blk;

import dev.airlock.transport.TransportKind;
import dev.airlock.virtio.DeviceStatus;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A backend fault (DEVICE_NEEDS_RESET) while requests are in the rings: under each failure policy
 * nothing hangs, and recovery resubmits what was in flight.
 */
class BlkRecoveryTest {
    private static final int REQUESTS = 24;
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    private final BlkHarness h = new BlkHarness();
    private BlkDevice backend;

    @AfterEach
    void close() throws IOException {
        h.close();
        if (backend != null) {
            backend.close();
        }
    }

    private BlockDevice open(TransportKind kind, BlkHarness.Faultable model, BlockDeviceOptions.FailurePolicy policy)
            throws IOException {
        return h.open(kind, model, BlockDeviceOptions.of(BlkHarness.IO_AREA_GPA, BlkHarness.IO_AREA_BYTES).withFailurePolicy(policy, 3));
    }

    private BlkHarness.Faultable faultable() throws IOException {
        backend = BlkDevice.open(BlkOptions.builder(BlkHarness.image(dir, "disk.img", 1 << 20, 0)).numQueues(2).build());
        return new BlkHarness.Faultable(backend);
    }

    /** Holds the backend's notifications and submits writes of block {@code i} filled with {@code i + 1}. */
    private List<CompletableFuture<Void>> writesInFlight(BlkHarness.Faultable model, BlockDevice blk) throws Exception {
        // The backend's workers poll the rings while they drain; once idle they wait for a
        // notification, which the model now holds back, so the requests below stay in the rings.
        blk.writeBytes(0, new byte[512], 0, 512);
        awaitWorkersParked();
        model.hold();
        MemorySegment ram = h.ram(0, (long) REQUESTS * BLOCK);
        List<CompletableFuture<Void>> futures = new ArrayList<>();
        for (int i = 0; i < REQUESTS; i++) {
            ram.asSlice((long) i * BLOCK, BLOCK).fill((byte) (i + 1));
            futures.add(blk.writeAsync((long) i * (BLOCK / 512), (long) i * BLOCK, BLOCK));
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (model.heldKicks() == 0 && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        Thread.sleep(20); // let the driver thread add every request
        assertTrue(model.heldKicks() > 0, "the requests reached the rings");
        assertTrue(futures.stream().noneMatch(CompletableFuture::isDone), "nothing completed while notifications are held");
        return futures;
    }

    /** Waits until every backend queue worker ("blk:..." threads) is parked waiting for a notification. */
    private static void awaitWorkersParked() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (System.nanoTime() < deadline) {
            boolean parked = Thread.getAllStackTraces().keySet().stream()
                    .filter(t -> t.getName().startsWith("blk:") && t.isAlive())
                    .allMatch(t -> t.getState() == Thread.State.WAITING);
            if (parked) {
                return;
            }
            Thread.sleep(1);
        }
        throw new AssertionError("backend workers did not go idle within 5 s");
    }

    private void assertWritten(Path image) throws IOException {
        byte[] file = Files.readAllBytes(image);
        for (int i = 0; i < REQUESTS; i++) {
            assertEquals((byte) (i + 1), file[i * BLOCK], "block " + i);
            assertEquals((byte) (i + 1), file[i * BLOCK + BLOCK - 1], "block " + i);
        }
    }

    private static void awaitAll(List<CompletableFuture<Void>> futures) throws Exception {
        CompletableFuture.allOf(futures.toArray(new CompletableFuture<?>[0])).get(10, TimeUnit.SECONDS);
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldRecoverAutomaticallyAndResubmitWhatWasInFlight(TransportKind kind) throws Exception {
        BlkHarness.Faultable model = faultable();
        BlockDevice blk = open(kind, model, BlockDeviceOptions.FailurePolicy.RECOVER);
        List<CompletableFuture<Void>> futures = writesInFlight(model, blk);
        model.fault();
        awaitAll(futures);
        assertEquals(1, blk.recoveries());
        assertFalse(blk.isFailed());
        assertWritten(backend.options().image());
        assertEquals(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK,
                h.world.deviceHost().deviceStatus(h.guest.id(), 0), "the device runs again");
        byte[] back = new byte[BLOCK];
        blk.readBytes(BLOCK, back, 0, BLOCK);
        assertEquals(2, back[100], "and serves new requests");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldHoldRequestsUntilRecoverIsCalled(TransportKind kind) throws Exception {
        BlkHarness.Faultable model = faultable();
        BlockDevice blk = open(kind, model, BlockDeviceOptions.FailurePolicy.HOLD);
        List<CompletableFuture<Void>> futures = writesInFlight(model, blk);
        model.fault();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!blk.isFailed() && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        assertTrue(blk.isFailed(), "the driver saw DEVICE_NEEDS_RESET");
        CompletableFuture<Void> later = blk.flushAsync(); // queued, not failed
        Thread.sleep(50);
        assertTrue(futures.stream().noneMatch(CompletableFuture::isDone), "held, not failed");
        assertFalse(later.isDone());
        blk.recover();
        awaitAll(futures);
        later.get(10, TimeUnit.SECONDS);
        assertWritten(backend.options().image());
        assertEquals(1, blk.recoveries());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldFailPendingRequestsThenWorkAgainAfterRecover(TransportKind kind) throws Exception {
        BlkHarness.Faultable model = faultable();
        BlockDevice blk = open(kind, model, BlockDeviceOptions.FailurePolicy.FAIL);
        List<CompletableFuture<Void>> futures = writesInFlight(model, blk);
        model.fault();
        for (CompletableFuture<Void> f : futures) {
            ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(10, TimeUnit.SECONDS));
            assertInstanceOf(BlkDeviceFailedException.class, e.getCause());
        }
        assertTrue(blk.isFailed());
        assertThrows(BlkDeviceFailedException.class, () -> blk.read(0, 0, 512), "new requests fail at once");
        blk.recover();
        assertFalse(blk.isFailed());
        byte[] data = new byte[BLOCK];
        data[7] = 42;
        blk.writeBytes(0, data, 0, BLOCK);
        byte[] back = new byte[BLOCK];
        blk.readBytes(0, back, 0, BLOCK);
        assertEquals(42, back[7]);
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldFailPendingRequestsOnClose(TransportKind kind) throws Exception {
        BlkHarness.Faultable model = faultable();
        BlockDevice blk = open(kind, model, BlockDeviceOptions.FailurePolicy.HOLD);
        List<CompletableFuture<Void>> futures = writesInFlight(model, blk);
        blk.close();
        for (CompletableFuture<Void> f : futures) {
            ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(10, TimeUnit.SECONDS));
            assertTrue(e.getCause().getMessage().contains("closed"), e.getCause().getMessage());
        }
        assertEquals(0, h.world.deviceHost().deviceStatus(h.guest.id(), 0), "close reset the device");
        MemorySegment ram = h.ram(0, 8);
        assertEquals(1, ram.get(ValueLayout.JAVA_BYTE, 0), "the buffers are the caller's again");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldFailPendingRequestsWhenTheTransportBreaksEvenUnderHold(TransportKind kind) throws Exception {
        BlkHarness.Faultable model = faultable();
        BlockDevice blk = open(kind, model, BlockDeviceOptions.FailurePolicy.HOLD);
        List<CompletableFuture<Void>> futures = writesInFlight(model, blk);
        h.guest.driverHost().close(); // breaks every transport of the guest, as the device VM's death does
        for (CompletableFuture<Void> f : futures) {
            ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(10, TimeUnit.SECONDS));
            assertInstanceOf(BlkDeviceFailedException.class, e.getCause());
        }
        assertTrue(blk.isFailed());
        assertThrows(BlkDeviceFailedException.class, blk::recover, "no reset can reach the device");
        assertThrows(BlkDeviceFailedException.class, () -> blk.read(0, 0, 512));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldFailRequestsInsteadOfHangingWhenTheBackendIsClosedWhileServed(TransportKind kind) throws Exception {
        BlkHarness.Faultable model = faultable();
        BlockDevice blk = open(kind, model, BlockDeviceOptions.FailurePolicy.RECOVER);
        blk.writeBytes(0, new byte[512], 0, 512);
        backend.close(); // the image goes away under a live driver
        IOException e = assertThrows(IOException.class, () -> blk.read(0, 0, 512));
        assertInstanceOf(BlkDeviceFailedException.class, e, e.toString());
        assertTrue(blk.isFailed());
        assertTrue(h.world.deviceHost().faultCount(h.guest.id(), 0) >= 2, "closing and each re-activation reported a fault");
        assertEquals(0, blk.recoveries(), "no recovery succeeded");
    }
}
