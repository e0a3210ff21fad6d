package dev.airlock.devices.blk;

import dev.airlock.transport.TransportKind;
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
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The block device end to end, driver in a secondary and backend in the primary, on both transports. */
class BlkEndToEndTest {
    private static final long IMAGE_BYTES = 4L << 20;

    @TempDir
    Path dir;

    private final BlkHarness h = new BlkHarness();

    @AfterEach
    void close() {
        h.close();
    }

    private BlkDevice device(BlkOptions.Builder builder) throws IOException {
        return BlkDevice.open(builder.build());
    }

    private BlkOptions.Builder image(long seed) throws IOException {
        return BlkOptions.builder(BlkHarness.image(dir, "disk.img", IMAGE_BYTES, seed));
    }

    private static byte[] random(int length, long seed) {
        byte[] b = new byte[length];
        new SplittableRandom(seed).nextBytes(b);
        return b;
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldReadBackWhatWasWrittenThroughGuestRamAndStaging(TransportKind kind) throws IOException {
        BlkDevice backend = device(image(0).serial("airlock-disk-0001"));
        BlockDevice blk = h.open(kind, backend);
        assertEquals(IMAGE_BYTES / 512, blk.capacitySectors());
        assertFalse(blk.isReadOnly());
        assertEquals("airlock-disk-0001", blk.serial());

        byte[] data = random(600 * 1024, 1); // larger than one request and one bounce mapping
        MemorySegment ram = h.ram(0, data.length);
        MemorySegment.copy(MemorySegment.ofArray(data), 0, ram, 0, data.length);
        blk.write(100, 0, data.length);
        ram.fill((byte) 0);
        blk.read(100, 0, data.length);
        assertArrayEquals(data, ram.toArray(ValueLayout.JAVA_BYTE));

        byte[] back = new byte[data.length];
        blk.readBytes(100 * 512L, back, 0, back.length);
        assertArrayEquals(data, back, "staged read");
        byte[] small = random(4096, 2);
        blk.writeBytes(8192 * 512L - 4096, small, 0, small.length);
        byte[] onDisk = Arrays.copyOfRange(Files.readAllBytes(backend.options().image()), (int) (8192 * 512L - 4096), 8192 * 512);
        assertArrayEquals(small, onDisk, "the image file holds the write");
        assertEquals(0, backend.metrics().ioErrors());
        assertEquals(data.length * 2L + small.length, backend.metrics().bytesRead() + backend.metrics().bytesWritten() - data.length);
        assertEquals(0, h.world.deviceHost().faultCount(h.guest.id(), 0));
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldFlushAndCountRequestsPerType(TransportKind kind) throws IOException {
        BlkDevice backend = device(image(0));
        BlockDevice blk = h.open(kind, backend);
        assertTrue(blk.info().has(BlkConfigLayout.VIRTIO_BLK_F_FLUSH));
        blk.writeBytes(0, random(512, 3), 0, 512);
        blk.flush();
        blk.flush();
        assertEquals(2, backend.metrics().flushes());
        assertEquals(1, backend.metrics().writes());
        assertEquals(512, backend.metrics().bytesWritten());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldBounceOnlyDataNotHeadersOrStatuses(TransportKind kind) throws IOException {
        BlkDevice backend = device(image(0));
        dev.airlock.transport.VirtioFrontend fe = h.attach(kind, backend);
        BlockDevice blk = BlockDevice.open(fe, h.guest.vm().addressSpace(), BlockDeviceOptions.of(BlkHarness.IO_AREA_GPA, BlkHarness.IO_AREA_BYTES));
        try {
            blk.write(0, 0, 4096); // the queue allocates its indirect tables (coherent) on first use
            dev.airlock.swiotlb.SwiotlbStats before = fe.pool().stats();
            blk.flush();
            blk.write(8, 0, 4096);
            dev.airlock.swiotlb.SwiotlbStats after = fe.pool().stats();
            // headers and statuses sit in coherent control slots: only the write's data crosses the pool
            assertEquals(4096, after.bytesToDevice() - before.bytesToDevice());
            assertEquals(0, after.bytesFromDevice() - before.bytesFromDevice());
            assertEquals(before.usedSlots(), after.usedSlots(), "a mapping was left behind");
        } finally {
            blk.close();
            fe.close();
            backend.close();
        }
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldRefuseWritesOnAReadOnlyDevice(TransportKind kind) throws IOException {
        BlkDevice backend = device(image(7).readOnly(true));
        BlockDevice blk = h.open(kind, backend);
        assertTrue(blk.isReadOnly());
        byte[] before = Files.readAllBytes(backend.options().image());
        BlkIoException e = assertThrows(BlkIoException.class, () -> blk.writeBytes(0, new byte[512], 0, 512));
        assertEquals(BlkRequestLayout.VIRTIO_BLK_S_IOERR, e.status());
        assertThrows(BlkUnsupportedException.class, () -> blk.discard(0, 8), "DISCARD is not offered read-only");
        assertThrows(BlkUnsupportedException.class, () -> blk.writeZeroes(0, 8, false));
        byte[] first = new byte[1024];
        blk.readBytes(0, first, 0, first.length);
        assertArrayEquals(Arrays.copyOf(before, 1024), first, "reads work");
        assertArrayEquals(before, Files.readAllBytes(backend.options().image()), "the image is untouched");
        assertEquals(1, backend.metrics().ioErrors());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldFailRequestsPastTheCapacityWithIoErr(TransportKind kind) throws IOException {
        BlkDevice backend = device(image(0));
        BlockDevice blk = h.open(kind, backend);
        long last = blk.capacitySectors() - 1;
        blk.read(last, 0, 512);
        BlkIoException e = assertThrows(BlkIoException.class, () -> blk.read(last, 0, 1024));
        assertEquals(BlkRequestLayout.VIRTIO_BLK_S_IOERR, e.status());
        assertThrows(BlkIoException.class, () -> blk.write(blk.capacitySectors(), 0, 512));
        assertThrows(BlkIoException.class, () -> blk.writeZeroes(last, 2, false));
        blk.read(0, 0, 512);
        assertEquals(3, backend.metrics().ioErrors());
        assertEquals(0, h.world.deviceHost().faultCount(h.guest.id(), 0), "an IOERR is not a device fault");
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldUseSeveralQueuesWhenOffered(TransportKind kind) throws Exception {
        BlkDevice backend = device(image(0).numQueues(3));
        BlockDevice blk = h.open(kind, backend);
        assertEquals(3, blk.info().queueCount());
        List<CompletableFuture<Void>> writes = new ArrayList<>();
        MemorySegment ram = h.ram(0, 64 * 4096);
        for (int i = 0; i < 64; i++) {
            ram.asSlice(i * 4096L, 4096).fill((byte) i);
            writes.add(blk.writeAsync(i * 8L, i * 4096L, 4096));
        }
        CompletableFuture.allOf(writes.toArray(new CompletableFuture<?>[0])).get();
        byte[] file = Files.readAllBytes(backend.options().image());
        for (int i = 0; i < 64; i++) {
            assertEquals((byte) i, file[i * 4096 + 4095], "block " + i);
        }
        assertEquals(64, backend.metrics().writes());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldDiscardIntoHolesAndWriteZeroes(TransportKind kind) throws IOException {
        BlkDevice backend = device(image(9));
        BlockDevice blk = h.open(kind, backend);
        Path file = backend.options().image();
        long blocksBefore = ImageFiles.allocatedBlocks(file);
        blk.discard(0, 2048); // 1 MiB
        blk.flush();
        assertTrue(ImageFiles.allocatedBlocks(file) <= blocksBefore - 2048, "1 MiB deallocated: " + blocksBefore + " -> "
                + ImageFiles.allocatedBlocks(file));
        assertTrue(ImageFiles.isZero(file, 0, 1 << 20), "a punched hole reads back as zeros");

        byte[] data = Files.readAllBytes(file);
        assertFalse(ImageFiles.isZero(file, 2L << 20, 4096));
        blk.writeZeroes(4096, 8, false); // 4 KiB at 2 MiB, kept allocated
        long afterZero = ImageFiles.allocatedBlocks(file);
        assertTrue(ImageFiles.isZero(file, 2L << 20, 4096));
        blk.writeZeroes(6144, 2048, true); // the last MiB, may unmap
        assertTrue(ImageFiles.isZero(file, 3L << 20, 1 << 20));
        assertTrue(ImageFiles.allocatedBlocks(file) <= afterZero - 2048, "unmap punched the last MiB");
        byte[] after = Files.readAllBytes(file);
        assertArrayEquals(Arrays.copyOfRange(data, (1 << 20), 2 << 20), Arrays.copyOfRange(after, 1 << 20, 2 << 20),
                "bytes outside the ranges are untouched");
        byte[] readBack = new byte[4096];
        blk.readBytes(2L << 20, readBack, 0, readBack.length);
        assertArrayEquals(new byte[4096], readBack);
        assertEquals(1, backend.metrics().discards());
        assertEquals(2, backend.metrics().writeZeroes());
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldQueueRequestsBeyondTheDepthInsteadOfFailing(TransportKind kind) throws Exception {
        BlkDevice backend = device(image(0));
        BlockDevice blk = h.open(kind, backend, BlockDeviceOptions.of(BlkHarness.IO_AREA_GPA, BlkHarness.IO_AREA_BYTES)
                .withQueueDepth(2).withQueueSize(4));
        MemorySegment ram = h.ram(0, 1 << 20);
        List<CompletableFuture<Void>> all = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            ram.asSlice(i * 4096L, 4096).fill((byte) (i + 1));
            all.add(blk.writeAsync(i * 8L, i * 4096L, 4096));
        }
        CompletableFuture.allOf(all.toArray(new CompletableFuture<?>[0])).get();
        ram.fill((byte) 0);
        blk.read(0, 0, 200 * 4096);
        for (int i = 0; i < 200; i++) {
            assertEquals((byte) (i + 1), ram.get(ValueLayout.JAVA_BYTE, i * 4096L + 17), "block " + i);
        }
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldWaitForBouncePoolSpaceRatherThanFail(TransportKind kind) throws Exception {
        long imageBytes = 32L << 20;
        BlkDevice backend = BlkDevice.open(BlkOptions.builder(BlkHarness.image(dir, "big.img", imageBytes, 0)).build());
        BlockDevice blk = h.open(kind, backend, BlockDeviceOptions.of(BlkHarness.IO_AREA_GPA, BlkHarness.IO_AREA_BYTES));
        MemorySegment ram = h.ram(0, 1 << 20);
        for (int i = 0; i < (1 << 20); i += 4096) {
            ram.set(ValueLayout.JAVA_INT_UNALIGNED, i, i + 1);
        }
        // 32 writes of 1 MiB at once: far more than the 8 MiB region's bounce pool holds.
        List<CompletableFuture<Void>> all = new ArrayList<>();
        for (int i = 0; i < 32; i++) {
            all.add(blk.writeAsync(i * 2048L, 0, 1 << 20));
        }
        CompletableFuture.allOf(all.toArray(new CompletableFuture<?>[0])).get(30, java.util.concurrent.TimeUnit.SECONDS);
        byte[] file = Files.readAllBytes(backend.options().image());
        MemorySegment f = MemorySegment.ofArray(file);
        for (int i = 0; i < 32; i++) {
            assertEquals(-1, MemorySegment.mismatch(ram, 0, 1 << 20, f, (long) i << 20, (long) (i + 1) << 20), "MiB " + i);
        }
        assertEquals(0, backend.metrics().ioErrors());
    }
}
