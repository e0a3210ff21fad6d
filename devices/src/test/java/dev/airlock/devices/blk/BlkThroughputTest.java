package dev.airlock.devices.blk;

import dev.airlock.transport.TransportKind;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Streams 32 MiB each way with 8 requests in flight and prints the rates; the data must come back intact. */
class BlkThroughputTest {
    private static final int CHUNK = 128 * 1024;
    private static final int SLOTS = 8;
    private static final long TOTAL = 32L << 20;

    @TempDir
    Path dir;

    private final BlkHarness h = new BlkHarness();

    @AfterEach
    void close() {
        h.close();
    }

    @ParameterizedTest
    @EnumSource(value = TransportKind.class, names = {"MSGQ_MMIO", "SHMEM_DOORBELL"})
    void shouldStreamThirtyTwoMebibytesEachWayIntact(TransportKind kind) throws Exception {
        BlkDevice backend = BlkDevice.open(BlkOptions.builder(BlkHarness.image(dir, "big.img", TOTAL, 0)).numQueues(2).build());
        BlockDevice blk = h.open(kind, backend, BlockDeviceOptions.of(BlkHarness.IO_AREA_GPA, BlkHarness.IO_AREA_BYTES));
        MemorySegment ram = h.ram(0, (long) SLOTS * CHUNK);
        CRC32C written = new CRC32C();
        long start = System.nanoTime();
        stream(blk, ram, true, written);
        long writeNs = System.nanoTime() - start;
        blk.flush();
        CRC32C read = new CRC32C();
        start = System.nanoTime();
        stream(blk, ram, false, read);
        long readNs = System.nanoTime() - start;
        System.out.printf("%s: write %.0f MiB/s, read %.0f MiB/s (%d KiB requests, %d in flight)%n", kind,
                TOTAL / 1048576.0 / (writeNs / 1e9), TOTAL / 1048576.0 / (readNs / 1e9), CHUNK / 1024, SLOTS);
        assertEquals(written.getValue(), read.getValue(), "CRC32C of the data written and read back");
        assertEquals(TOTAL, backend.metrics().bytesWritten());
    }

    /** Keeps up to SLOTS requests in flight over the whole disk, in order; feeds every chunk to crc. */
    private static void stream(BlockDevice blk, MemorySegment ram, boolean write, CRC32C crc) throws Exception {
        ArrayDeque<CompletableFuture<Void>> inFlight = new ArrayDeque<>();
        ArrayDeque<Integer> slots = new ArrayDeque<>();
        int chunks = (int) (TOTAL / CHUNK);
        for (int i = 0; i < chunks; i++) {
            if (inFlight.size() == SLOTS) {
                finish(inFlight, slots, ram, crc);
            }
            int slot = i % SLOTS;
            MemorySegment buffer = ram.asSlice((long) slot * CHUNK, CHUNK);
            long sector = (long) i * CHUNK / 512;
            if (write) {
                for (int b = 0; b < CHUNK; b += 8) {
                    buffer.set(ValueLayout.JAVA_LONG_UNALIGNED, b, sector * 0x9E3779B97F4A7C15L + b);
                }
                inFlight.add(blk.writeAsync(sector, (long) slot * CHUNK, CHUNK));
            } else {
                inFlight.add(blk.readAsync(sector, (long) slot * CHUNK, CHUNK));
            }
            slots.add(slot);
        }
        while (!inFlight.isEmpty()) {
            finish(inFlight, slots, ram, crc);
        }
    }

    private static void finish(ArrayDeque<CompletableFuture<Void>> inFlight, ArrayDeque<Integer> slots, MemorySegment ram,
                               CRC32C crc) throws Exception {
        inFlight.poll().get(30, TimeUnit.SECONDS);
        int slot = slots.poll();
        crc.update(ram.asSlice((long) slot * CHUNK, CHUNK).asByteBuffer());
    }
}
