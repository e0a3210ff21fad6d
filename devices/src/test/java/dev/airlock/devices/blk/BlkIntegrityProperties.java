package dev.airlock.devices.blk;

import dev.airlock.transport.TransportKind;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Random concurrent I/O against an in-memory model of the disk: several application threads, each
 * on its own stripe of the disk with several requests in flight that never overlap, over random
 * queue counts, queue sizes, depths, size_max, seg_max and request sizes, on both transports. Each
 * read is checked at completion; at the end the whole disk is read back and the image file compared.
 * A discarded range may read back as anything (§5.2.6.2) until it is written again.
 *
 * <p>Each case is one seed (in the test name): {@code -Dairlock.seed=N} reruns one,
 * {@code -Dairlock.tries=N} runs more.
 */
class BlkIntegrityProperties {
    private static final int SECTOR = 512;
    private static final int MAX_OP_SECTORS = 128;
    private static final long SLOT_BYTES = (long) MAX_OP_SECTORS * SECTOR;
    private static final int MAX_SLOTS = 4;

    @TempDir
    Path dir;

    static LongStream seeds() {
        String one = System.getProperty("airlock.seed");
        return one != null ? LongStream.of(Long.parseLong(one))
                : LongStream.range(0, Integer.getInteger("airlock.tries", 16)).map(i -> i * 0x9E3779B97F4A7C15L + 11);
    }

    /** The disk as it must read back; {@code known[s]} false after a discard of sector s. */
    private static final class Model {
        final byte[] bytes;
        final boolean[] known;

        Model(byte[] initial) {
            bytes = initial;
            known = new boolean[initial.length / SECTOR];
            Arrays.fill(known, true);
        }

        void check(long sector, MemorySegment data, String what) {
            for (int s = 0; s < data.byteSize() / SECTOR; s++) {
                int at = (int) ((sector + s) * SECTOR);
                if (!known[(int) sector + s]) {
                    continue;
                }
                long mismatch = MemorySegment.mismatch(data, (long) s * SECTOR, (long) (s + 1) * SECTOR,
                        MemorySegment.ofArray(bytes), at, at + SECTOR);
                if (mismatch >= 0) {
                    throw new AssertionError(what + ": sector " + (sector + s) + " differs from the model at byte " + mismatch);
                }
            }
        }
    }

    private record Op(long sector, int sectors, int slot, boolean read, CompletableFuture<Void> future) {
        boolean overlaps(long s, int n) {
            return s < sector + sectors && sector < s + n;
        }
    }

    static LongStream fewerSeeds() {
        return seeds().limit(Math.max(1, Integer.getInteger("airlock.tries", 16) / 2));
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void shouldMatchTheModelUnderRandomConcurrentIo(long seed) throws Exception {
        run(seed, false);
    }

    /**
     * The same with the backend faulting (DEVICE_NEEDS_RESET) every few milliseconds: the driver
     * recovers each time and resubmits what was in flight; no request fails and the disk still
     * matches the model.
     */
    @ParameterizedTest(name = "seed {0}")
    @MethodSource("fewerSeeds")
    void shouldMatchTheModelAcrossRepeatedBackendFaults(long seed) throws Exception {
        run(seed, true);
    }

    private void run(long seed, boolean faults) throws Exception {
        Random rnd = new Random(seed);
        TransportKind kind = TransportKind.hosted().get((int) Math.floorMod(seed, TransportKind.hosted().size()));
        int sectors = 512 + rnd.nextInt(1536);
        int threads = 1 + rnd.nextInt(4);
        Path image = BlkHarness.image(dir, "disk.img", (long) sectors * SECTOR, seed | 1);
        Model disk = new Model(Files.readAllBytes(image));
        BlkOptions backendOptions = BlkOptions.builder(image).numQueues(1 + rnd.nextInt(3)).queueSizeMax(4 << rnd.nextInt(6))
                .sizeMax(SECTOR << rnd.nextInt(10)).segMax(1 + rnd.nextInt(8)).build();
        BlockDeviceOptions options = BlockDeviceOptions.of(BlkHarness.IO_AREA_GPA, BlkHarness.IO_AREA_BYTES)
                .withQueueDepth(1 + rnd.nextInt(32)).withQueueSize(4 << rnd.nextInt(6)).withMaxRequestBytes(SECTOR << rnd.nextInt(8));
        String setting = kind + ", " + threads + " threads, " + backendOptions + ", " + options;
        try (BlkHarness h = new BlkHarness()) {
            BlkDevice backend = BlkDevice.open(backendOptions);
            BlkHarness.Faultable model = new BlkHarness.Faultable(backend); // closed by the harness, after the world
            BlockDevice blk = h.open(kind, model, faults ? options.withFailurePolicy(BlockDeviceOptions.FailurePolicy.RECOVER, 1000) : options);
            List<Thread> workers = new ArrayList<>();
            List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
            int stripe = sectors / threads;
            for (int t = 0; t < threads; t++) {
                long first = (long) t * stripe;
                long seedT = seed * 31 + t;
                long ramBase = (long) t * MAX_SLOTS * SLOT_BYTES;
                workers.add(Thread.ofPlatform().name("blk-app-" + t).start(() -> {
                    try {
                        runStripe(new Random(seedT), h, blk, disk, first, stripe, ramBase);
                    } catch (Throwable e) {
                        failures.add(e);
                    }
                }));
            }
            int injected = faults ? injectFaults(model, workers, new Random(seed ^ 0x5DEECE66DL)) : 0;
            for (Thread w : workers) {
                w.join(TimeUnit.SECONDS.toMillis(60));
            }
            if (!failures.isEmpty()) {
                AssertionError e = new AssertionError("seed " + seed + " (" + setting + "): " + failures.getFirst(), failures.getFirst());
                failures.stream().skip(1).forEach(e::addSuppressed);
                throw e;
            }
            blk.flush();
            byte[] whole = new byte[sectors * SECTOR];
            blk.readBytes(0, whole, 0, whole.length);
            disk.check(0, MemorySegment.ofArray(whole), "final read-back, seed " + seed + " (" + setting + ")");
            disk.check(0, MemorySegment.ofArray(Files.readAllBytes(image)), "image file, seed " + seed);
            System.out.println("seed " + seed + ": " + setting + ": injected faults " + injected + ", recoveries " + blk.recoveries()
                    + ", missed wakeups " + blk.missedWakeups() + ", " + backend.metrics());
            assertEquals(0, backend.metrics().ioErrors(), "no request failed");
            assertEquals(injected, h.world.deviceHost().faultCount(h.guest.id(), 0), "only the injected faults");
            // A fault that lands while the driver re-initialises fails that attempt, and the next one recovers.
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (injected > 0 && (blk.recoveries() == 0 || needsReset(h)) && System.nanoTime() < deadline) {
                Thread.sleep(1); // the last fault's notification may still be on its way
            }
            assertTrue(!needsReset(h), "the driver saw every DEVICE_NEEDS_RESET and reset the device");
            assertTrue(blk.recoveries() <= injected && (injected == 0 || blk.recoveries() > 0),
                    injected + " faults, " + blk.recoveries() + " recoveries");
        }
    }

    private static boolean needsReset(BlkHarness h) {
        return (h.world.deviceHost().deviceStatus(h.guest.id(), 0) & dev.airlock.virtio.DeviceStatus.DEVICE_NEEDS_RESET) != 0;
    }

    /** Faults the active backend every 1 to 8 ms while the application threads run; returns how often. */
    private static int injectFaults(BlkHarness.Faultable model, List<Thread> workers, Random rnd) throws InterruptedException {
        int injected = 0;
        while (workers.stream().anyMatch(Thread::isAlive)) {
            Thread.sleep(1 + rnd.nextInt(8));
            if (model.faultIfActive()) {
                injected++;
            }
        }
        return injected;
    }

    /** One application thread: random non-overlapping requests on its stripe, up to 4 in flight. */
    private static void runStripe(Random rnd, BlkHarness h, BlockDevice blk, Model model, long first, int stripe, long ramBase)
            throws Exception {
        int maxInFlight = 1 + rnd.nextInt(MAX_SLOTS);
        ArrayDeque<Op> inFlight = new ArrayDeque<>();
        boolean[] slotBusy = new boolean[MAX_SLOTS];
        for (int step = 0; step < 60; step++) {
            int n = 1 + rnd.nextInt(Math.min(MAX_OP_SECTORS, stripe));
            long sector = first + rnd.nextInt(stripe - n + 1);
            while (inFlight.size() >= maxInFlight || inFlight.stream().anyMatch(o -> o.overlaps(sector, n))) {
                complete(inFlight.pollFirst(), h, model, slotBusy, ramBase);
            }
            int slot = 0;
            while (slotBusy[slot]) {
                slot++;
            }
            long gpa = ramBase + slot * SLOT_BYTES;
            MemorySegment buffer = h.ram(gpa, (long) n * SECTOR);
            int choice = rnd.nextInt(100);
            CompletableFuture<Void> future;
            boolean read = false;
            if (choice < 45) {
                byte[] data = new byte[n * SECTOR];
                rnd.nextBytes(data);
                MemorySegment.copy(MemorySegment.ofArray(data), 0, buffer, 0, data.length);
                System.arraycopy(data, 0, model.bytes, (int) sector * SECTOR, data.length);
                Arrays.fill(model.known, (int) sector, (int) sector + n, true);
                future = blk.writeAsync(sector, gpa, data.length);
            } else if (choice < 80) {
                buffer.fill((byte) 0x5a);
                future = blk.readAsync(sector, gpa, (long) n * SECTOR);
                read = true;
            } else if (choice < 87) {
                Arrays.fill(model.bytes, (int) sector * SECTOR, (int) (sector + n) * SECTOR, (byte) 0);
                Arrays.fill(model.known, (int) sector, (int) sector + n, true);
                future = blk.writeZeroesAsync(sector, n, rnd.nextBoolean());
            } else if (choice < 92) {
                Arrays.fill(model.known, (int) sector, (int) sector + n, false);
                future = blk.discardAsync(sector, n);
            } else if (choice < 95) {
                future = blk.flushAsync();
            } else {
                byte[] data = new byte[n * SECTOR];
                if (rnd.nextBoolean()) {
                    rnd.nextBytes(data);
                    System.arraycopy(data, 0, model.bytes, (int) sector * SECTOR, data.length);
                    Arrays.fill(model.known, (int) sector, (int) sector + n, true);
                    blk.writeBytes(sector * SECTOR, data, 0, data.length);
                } else {
                    blk.readBytes(sector * SECTOR, data, 0, data.length);
                    model.check(sector, MemorySegment.ofArray(data), "staged read");
                }
                continue;
            }
            slotBusy[slot] = true;
            inFlight.addLast(new Op(sector, n, slot, read, future));
        }
        while (!inFlight.isEmpty()) {
            complete(inFlight.pollFirst(), h, model, slotBusy, ramBase);
        }
    }

    private static void complete(Op op, BlkHarness h, Model model, boolean[] slotBusy, long ramBase) throws Exception {
        op.future().get(30, TimeUnit.SECONDS);
        if (op.read()) {
            model.check(op.sector(), h.ram(ramBase + op.slot() * SLOT_BYTES, (long) op.sectors() * SECTOR), "read");
        }
        slotBusy[op.slot()] = false;
    }
}
