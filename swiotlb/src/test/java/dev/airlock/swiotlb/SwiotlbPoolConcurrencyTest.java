package dev.airlock.swiotlb;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;

import static dev.airlock.swiotlb.SwiotlbPool.IO_TLB_SIZE;
import static dev.airlock.swiotlb.TestVm.RAM_BASE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Several threads map, write as the device, sync and unmap at once through a small pool (so that it
 * runs full now and then), while another allocates and frees multi-segment coherent buffers. Every
 * thread claims the slots it was given in an ownership array: two owners of one slot fail the test,
 * as does any byte that arrives wrong.
 */
class SwiotlbPoolConcurrencyTest {
    private static final int THREADS = 6;
    private static final int LIVE_PER_THREAD = 3;
    private static final int WINDOW = 64 * 1024;
    private static final int ITERATIONS = 4000;
    private static final long POOL_BYTES = 4 * SwiotlbPool.IO_TLB_SEGMENT_BYTES;

    private record Mapping(long dma, int sizeBytes, DmaDirection direction, int ramOffset, byte[] expected, int firstSlot,
                           int slotCount) {
    }

    @Test
    void shouldNeverGiveASlotToTwoMappingsOrCorruptDataUnderConcurrency() throws InterruptedException {
        try (TestVm vm = new TestVm((long) THREADS * LIVE_PER_THREAD * WINDOW, POOL_BYTES)) {
            SwiotlbPool pool = vm.pool("stress", 0, POOL_BYTES, 4, 0xfff, 0);
            AtomicIntegerArray owner = new AtomicIntegerArray(pool.totalSlots());
            ConcurrentLinkedQueue<String> errors = new ConcurrentLinkedQueue<>();
            AtomicLong fullSeen = new AtomicLong();
            CountDownLatch start = new CountDownLatch(1);
            List<Thread> threads = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                int id = t + 1;
                threads.add(Thread.ofPlatform().start(() -> {
                    try {
                        start.await();
                        streamingWorker(vm, pool, owner, id, fullSeen);
                    } catch (Throwable e) {
                        errors.add("thread " + id + ": " + e);
                    }
                }));
            }
            Thread coherent = Thread.ofPlatform().start(() -> {
                try {
                    start.await();
                    coherentWorker(pool, owner, THREADS + 1, fullSeen);
                } catch (Throwable e) {
                    errors.add("coherent: " + e);
                }
            });
            start.countDown();
            for (Thread thread : threads) {
                thread.join();
            }
            coherent.join();

            assertEquals(List.of(), List.copyOf(errors));
            assertEquals(0, pool.stats().usedSlots());
            for (int i = 0; i < owner.length(); i++) {
                assertEquals(0, owner.get(i), "slot " + i + " still owned");
            }
            assertEquals(fullSeen.get(), pool.stats().failedMappings());
            assertTrue(pool.stats().highWaterSlots() <= pool.totalSlots());
            // Nothing leaked: the whole pool can be taken in one piece again.
            long all = pool.alloc(POOL_BYTES, IO_TLB_SIZE);
            pool.free(all, POOL_BYTES);
        }
    }

    @Test
    void shouldLetExactlyOneOfTwoRacingUnmapsOfAMappingSucceed() throws Exception {
        try (TestVm vm = new TestVm(1 << 20, 1 << 20); ExecutorService executor = Executors.newFixedThreadPool(2)) {
            SwiotlbPool pool = vm.pool("race", 0, 1 << 20, 2, 0, 0);
            MemorySegment orig = vm.ram(64, 20_000);
            for (int round = 0; round < 1000; round++) {
                long dma = pool.mapSingle(RAM_BASE + 64, 20_000, DmaDirection.BIDIRECTIONAL);
                vm.deviceView(dma, 20_000).fill((byte) round);
                CyclicBarrier barrier = new CyclicBarrier(2);
                Callable<Boolean> unmap = () -> {
                    barrier.await();
                    try {
                        pool.unmapSingle(dma, 20_000, DmaDirection.BIDIRECTIONAL);
                        return true;
                    } catch (IllegalArgumentException e) {
                        return false;
                    }
                };
                Future<Boolean> a = executor.submit(unmap);
                Future<Boolean> b = executor.submit(unmap);
                assertTrue(a.get() ^ b.get(), "round " + round + ": exactly one unmap succeeds");
                assertEquals(0, pool.stats().usedSlots());
                byte[] expected = new byte[20_000];
                Arrays.fill(expected, (byte) round);
                assertEquals(-1, orig.mismatch(MemorySegment.ofArray(expected)));
            }
        }
    }

    private static void streamingWorker(TestVm vm, SwiotlbPool pool, AtomicIntegerArray owner, int id, AtomicLong fullSeen) {
        Random random = new Random(id);
        Mapping[] held = new Mapping[LIVE_PER_THREAD];
        for (int i = 0; i < ITERATIONS; i++) {
            int k = random.nextInt(LIVE_PER_THREAD);
            if (held[k] != null) {
                finish(vm, pool, owner, id, held[k], random);
                held[k] = null;
                continue;
            }
            int ramOffset = ((id - 1) * LIVE_PER_THREAD + k) * WINDOW + random.nextInt(16 * 1024);
            int size = 1 + random.nextInt(random.nextBoolean() ? 4096 : 40_000);
            DmaDirection direction = DmaDirection.values()[random.nextInt(3)];
            byte[] expected = new byte[size];
            random.nextBytes(expected);
            MemorySegment orig = vm.ram(ramOffset, size);
            MemorySegment.copy(MemorySegment.ofArray(expected), 0, orig, 0, size);
            long dma;
            try {
                dma = pool.mapSingle(RAM_BASE + ramOffset, size, direction);
            } catch (SwiotlbFullException e) {
                fullSeen.incrementAndGet();
                continue;
            }
            long offset = (RAM_BASE + ramOffset) & 0x7ff;
            int firstSlot = (int) ((dma - offset - pool.dmaBase()) / IO_TLB_SIZE);
            int slotCount = (int) ((offset + size + IO_TLB_SIZE - 1) / IO_TLB_SIZE);
            claim(owner, id, firstSlot, slotCount);
            check(Arrays.equals(expected, TestVm.bytes(vm.deviceView(dma, size))), "device sees the original");
            held[k] = new Mapping(dma, size, direction, ramOffset, expected, firstSlot, slotCount);
        }
        for (Mapping m : held) {
            if (m != null) {
                finish(vm, pool, owner, id, m, random);
            }
        }
    }

    /** Acts as the device (writes part of a from-device buffer), syncs now and then, and unmaps. */
    private static void finish(TestVm vm, SwiotlbPool pool, AtomicIntegerArray owner, int id, Mapping m, Random random) {
        byte[] expected = m.expected();
        check(Arrays.equals(expected, TestVm.bytes(vm.deviceView(m.dma(), m.sizeBytes()))), "slots unchanged by others");
        if (m.direction().fromDevice()) {
            int rel = random.nextInt(m.sizeBytes());
            int length = 1 + random.nextInt(m.sizeBytes() - rel);
            byte value = (byte) id;
            vm.deviceView(m.dma() + rel, length).fill(value);
            Arrays.fill(expected, rel, rel + length, value);
            if (random.nextBoolean()) {
                pool.syncForCpu(m.dma() + rel, length, m.direction());
                check(Arrays.equals(expected, TestVm.bytes(vm.ram(m.ramOffset(), m.sizeBytes()))), "syncForCpu");
            }
        }
        release(owner, id, m.firstSlot(), m.slotCount());
        pool.unmapSingle(m.dma(), m.sizeBytes(), m.direction());
        check(Arrays.equals(expected, TestVm.bytes(vm.ram(m.ramOffset(), m.sizeBytes()))), "original after unmap");
    }

    private static void coherentWorker(SwiotlbPool pool, AtomicIntegerArray owner, int id, AtomicLong fullSeen) {
        Random random = new Random(id);
        for (int i = 0; i < 400; i++) {
            long size = random.nextBoolean() ? 300 * 1024 : 1 + random.nextInt(16 * 1024);
            long dma;
            try {
                dma = pool.alloc(size, 4096);
            } catch (SwiotlbFullException e) {
                fullSeen.incrementAndGet();
                Thread.onSpinWait();
                continue;
            }
            int firstSlot = (int) ((dma - pool.dmaBase()) / IO_TLB_SIZE);
            int slotCount = (int) ((size + IO_TLB_SIZE - 1) / IO_TLB_SIZE);
            claim(owner, id, firstSlot, slotCount);
            MemorySegment view = pool.cpuSegment(dma, size);
            check(view.mismatch(MemorySegment.ofArray(new byte[(int) size])) == -1, "coherent memory is zeroed");
            view.fill((byte) 0x42);
            release(owner, id, firstSlot, slotCount);
            pool.free(dma, size);
        }
    }

    private static void claim(AtomicIntegerArray owner, int id, int firstSlot, int slotCount) {
        for (int s = firstSlot; s < firstSlot + slotCount; s++) {
            int previous = owner.compareAndExchange(s, 0, id);
            check(previous == 0, "slot " + s + " given to " + id + " while owned by " + previous);
        }
    }

    private static void release(AtomicIntegerArray owner, int id, int firstSlot, int slotCount) {
        for (int s = firstSlot; s < firstSlot + slotCount; s++) {
            check(owner.compareAndExchange(s, id, 0) == id, "slot " + s + " not owned by " + id);
        }
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }
}
