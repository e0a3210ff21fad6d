package dev.airlock.swiotlb;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import java.util.stream.LongStream;

import static dev.airlock.swiotlb.SwiotlbPool.IO_TLB_SEGSIZE;
import static dev.airlock.swiotlb.SwiotlbPool.IO_TLB_SEGMENT_BYTES;
import static dev.airlock.swiotlb.SwiotlbPool.IO_TLB_SIZE;
import static dev.airlock.swiotlb.TestVm.RAM_BASE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Random sequences of map, device write, CPU write, sync, unmap, coherent alloc and free, and wrong
 * calls, against a model of the driver's memory and of each mapping's slots: live allocations never
 * share a slot and mappings never cross a segment, no byte is lost or corrupted, wrong calls change
 * nothing, and the pool ends empty.
 */
class SwiotlbPoolProperties {
    private static final int RAM_WINDOW = 384 * 1024;

    sealed interface Op permits Map, DeviceWrite, CpuWrite, Sync, Unmap, WrongCall, Alloc, Free {
    }

    record Map(int origOffset, int sizeBytes, DmaDirection direction) implements Op {
    }

    record DeviceWrite(int which, int rel, int length, int seed) implements Op {
    }

    record CpuWrite(int offset, int length, int seed) implements Op {
    }

    record Sync(int which, int rel, int length, boolean forDevice) implements Op {
    }

    record Unmap(int which) implements Op {
    }

    record WrongCall(int which, int kind) implements Op {
    }

    record Alloc(int sizeBytes, int alignmentShift) implements Op {
    }

    record Free(int which) implements Op {
    }

    /** A live coherent allocation, filled with {@code fill} by the test. */
    private record Coherent(long dma, int sizeBytes, int firstSlot, int slotCount, byte fill) {
    }

    /** What the test knows of one live mapping. */
    private record Live(long dma, int sizeBytes, DmaDirection direction, int origOffset, int firstSlot, int slotCount,
                        byte[] slots) {
    }

    /** How many seeds a normal run tries; {@code -Dairlock.tries=N} for more. */
    private static final int TRIES = Integer.getInteger("airlock.tries", 1000);

    static LongStream seeds() {
        Long only = Long.getLong("airlock.seed");
        return only != null ? LongStream.of(only) : LongStream.range(0, TRIES);
    }

    /**
     * One random case per seed: pool shape, options and a sequence of up to 50 operations. A
     * failure names its seed; {@code -Dairlock.seed=N} reruns just that case.
     */
    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void shouldNeverOverlapLoseOrCorruptAndShouldEndEmpty(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int poolSlots = r.nextInt(8, 601);
        int areas = r.nextInt(1, 5);
        long minAlignMask = pick(r, 0L, 0x3L, 0x7ffL, 0xfffL, 0x3fffL);
        long allocAlignment = pick(r, 0L, 0L, 1L, 2048L, 4096L, 16384L);
        List<Op> ops = operations(r);
        try (TestVm vm = new TestVm(RAM_WINDOW, 2L * 1024 * 1024)) {
            int segments = (poolSlots + IO_TLB_SEGSIZE - 1) / IO_TLB_SEGSIZE;
            SwiotlbPool pool = vm.pool("prop", 0, (long) poolSlots * IO_TLB_SIZE, Math.min(areas, segments), minAlignMask,
                    allocAlignment);
            new Run(vm, pool, r.nextLong()).run(ops);
        }
    }

    private static long pick(SplittableRandom r, long... values) {
        return values[r.nextInt(values.length)];
    }

    private static int size(SplittableRandom r) {
        return switch (r.nextInt(3)) {
            case 0 -> r.nextInt(1, 4097);
            case 1 -> r.nextInt(1, 70_001);
            default -> (int) pick(r, 1, 2047, 2048, 2049, 4096, 65536, IO_TLB_SEGMENT_BYTES - 4096, IO_TLB_SEGMENT_BYTES);
        };
    }

    /** Operations in the proportions map 3 : device write 2 : cpu write 1 : sync 2 : unmap 2 : wrong 1 : alloc 1 : free 1. */
    private static List<Op> operations(SplittableRandom r) {
        int count = r.nextInt(1, 51);
        List<Op> ops = new ArrayList<>(count);
        DmaDirection[] directions = DmaDirection.values();
        for (int i = 0; i < count; i++) {
            int any = r.nextInt(Integer.MAX_VALUE);
            ops.add(switch (r.nextInt(13)) {
                case 0, 1, 2 -> new Map(any, size(r), directions[r.nextInt(directions.length)]);
                case 3, 4 -> new DeviceWrite(any, r.nextInt(Integer.MAX_VALUE), r.nextInt(Integer.MAX_VALUE), r.nextInt());
                case 5 -> new CpuWrite(any, r.nextInt(1, 8193), r.nextInt());
                case 6, 7 -> new Sync(any, r.nextInt(Integer.MAX_VALUE), r.nextInt(Integer.MAX_VALUE), r.nextBoolean());
                case 8, 9 -> new Unmap(any);
                case 10 -> new WrongCall(any, r.nextInt(5));
                case 11 -> new Alloc(r.nextBoolean() ? r.nextInt(1, 16385) : r.nextInt(1, 800_001), r.nextInt(17));
                default -> new Free(any);
            });
        }
        return ops;
    }

    /** One try: the pool, the model, and the checks after every step. */
    private static final class Run {
        private final TestVm vm;
        private final SwiotlbPool pool;
        private final MemorySegment ram;
        private final byte[] ramModel = new byte[RAM_WINDOW];
        private final List<Live> live = new ArrayList<>();
        private final List<Coherent> coherent = new ArrayList<>();
        private final Random random;

        Run(TestVm vm, SwiotlbPool pool, long seed) {
            this.vm = vm;
            this.pool = pool;
            this.ram = vm.ram(0, RAM_WINDOW);
            this.random = new Random(seed);
            random.nextBytes(ramModel);
            MemorySegment.copy(MemorySegment.ofArray(ramModel), 0, ram, 0, RAM_WINDOW);
        }

        void run(List<Op> ops) {
            for (Op op : ops) {
                switch (op) {
                    case Map m -> map(m);
                    case DeviceWrite w -> deviceWrite(w);
                    case CpuWrite w -> cpuWrite(w);
                    case Sync s -> sync(s);
                    case Unmap u -> {
                        if (!live.isEmpty()) {
                            unmap(live.get(u.which() % live.size()));
                        }
                    }
                    case WrongCall w -> wrongCall(w);
                    case Alloc a -> alloc(a);
                    case Free f -> {
                        if (!coherent.isEmpty()) {
                            free(coherent.get(f.which() % coherent.size()));
                        }
                    }
                }
                assertEquals(live.stream().mapToLong(Live::slotCount).sum() + coherent.stream().mapToLong(Coherent::slotCount).sum(),
                        pool.stats().usedSlots());
            }
            while (!live.isEmpty()) {
                unmap(live.getFirst());
            }
            while (!coherent.isEmpty()) {
                free(coherent.getFirst());
            }
            assertEquals(0, pool.stats().usedSlots());
            assertArrayEquals(ramModel, TestVm.bytes(ram));
        }

        private void map(Map m) {
            int size = (int) Math.min(m.sizeBytes(), Math.min(pool.maxMappingSize(), RAM_WINDOW));
            int origOffset = m.origOffset() % (RAM_WINDOW - size + 1);
            long origAddr = RAM_BASE + origOffset;
            long dma;
            try {
                dma = pool.mapSingle(origAddr, size, m.direction());
            } catch (SwiotlbFullException e) {
                return;
            }
            assertTrue(pool.contains(dma, size));
            long minAlignMask = pool.minAlignMask();
            assertEquals(origAddr & minAlignMask, dma & minAlignMask, "minAlignMask bits");
            long allocMask = pool.allocAlignment() != 0 ? Math.max(pool.allocAlignment(), IO_TLB_SIZE) - 1
                    : minAlignMask == 0 && size >= 4096 ? 4095 : IO_TLB_SIZE - 1;
            long offset = origAddr & minAlignMask & allocMask;
            assertEquals(0, (dma - offset) & allocMask, "allocation alignment");
            int firstSlot = (int) ((dma - offset - pool.dmaBase()) / IO_TLB_SIZE);
            int slotCount = (int) ((offset + size + IO_TLB_SIZE - 1) / IO_TLB_SIZE);
            assertTrue(slotCount <= IO_TLB_SEGSIZE);
            assertEquals(firstSlot / IO_TLB_SEGSIZE, (firstSlot + slotCount - 1) / IO_TLB_SEGSIZE, "crosses a segment");
            checkDisjoint(dma, firstSlot, slotCount);
            byte[] slots = Arrays.copyOfRange(ramModel, origOffset, origOffset + size);
            assertArrayEquals(slots, TestVm.bytes(vm.deviceView(dma, size)), "map copies the original for every direction");
            live.add(new Live(dma, size, m.direction(), origOffset, firstSlot, slotCount, slots));
        }

        private void checkDisjoint(long dma, int firstSlot, int slotCount) {
            for (Live other : live) {
                boolean disjoint = firstSlot + slotCount <= other.firstSlot() || other.firstSlot() + other.slotCount() <= firstSlot;
                assertTrue(disjoint, "slots of 0x" + Long.toHexString(dma) + " overlap 0x" + Long.toHexString(other.dma()));
            }
            for (Coherent other : coherent) {
                boolean disjoint = firstSlot + slotCount <= other.firstSlot() || other.firstSlot() + other.slotCount() <= firstSlot;
                assertTrue(disjoint, "slots of 0x" + Long.toHexString(dma) + " overlap 0x" + Long.toHexString(other.dma()));
            }
        }

        private void alloc(Alloc a) {
            long alignment = 1L << a.alignmentShift();
            long dma;
            try {
                dma = pool.alloc(a.sizeBytes(), alignment);
            } catch (SwiotlbFullException e) {
                return;
            }
            assertTrue(pool.contains(dma, a.sizeBytes()));
            assertEquals(0, dma % Math.max(alignment, IO_TLB_SIZE), "coherent alignment");
            int firstSlot = (int) ((dma - pool.dmaBase()) / IO_TLB_SIZE);
            int slotCount = (a.sizeBytes() + IO_TLB_SIZE - 1) / IO_TLB_SIZE;
            checkDisjoint(dma, firstSlot, slotCount);
            MemorySegment view = pool.cpuSegment(dma, a.sizeBytes());
            assertEquals(-1, view.mismatch(MemorySegment.ofArray(new byte[a.sizeBytes()])), "coherent memory is zeroed");
            byte fill = (byte) (1 + coherent.size());
            view.fill(fill);
            coherent.add(new Coherent(dma, a.sizeBytes(), firstSlot, slotCount, fill));
        }

        private void free(Coherent c) {
            byte[] expected = new byte[c.sizeBytes()];
            Arrays.fill(expected, c.fill());
            assertEquals(-1, vm.deviceView(c.dma(), c.sizeBytes()).mismatch(MemorySegment.ofArray(expected)), "coherent bytes intact");
            pool.free(c.dma(), c.sizeBytes());
            coherent.remove(c);
        }

        private void deviceWrite(DeviceWrite w) {
            if (live.isEmpty()) {
                return;
            }
            Live m = live.get(w.which() % live.size());
            int rel = w.rel() % m.sizeBytes();
            int length = 1 + w.length() % Math.min(m.sizeBytes() - rel, 8192);
            byte[] data = new byte[length];
            new Random(w.seed()).nextBytes(data);
            MemorySegment.copy(MemorySegment.ofArray(data), 0, vm.deviceView(m.dma() + rel, length), 0, length);
            System.arraycopy(data, 0, m.slots(), rel, length);
        }

        private void cpuWrite(CpuWrite w) {
            int offset = w.offset() % (RAM_WINDOW - w.length() + 1);
            byte[] data = new byte[w.length()];
            new Random(w.seed()).nextBytes(data);
            MemorySegment.copy(MemorySegment.ofArray(data), 0, ram, offset, data.length);
            System.arraycopy(data, 0, ramModel, offset, data.length);
        }

        private void sync(Sync s) {
            if (live.isEmpty()) {
                return;
            }
            Live m = live.get(s.which() % live.size());
            int rel = s.rel() % (m.sizeBytes() + 1);
            int length = s.length() % (m.sizeBytes() - rel + 1);
            if (s.forDevice()) {
                pool.syncForDevice(m.dma() + rel, length, m.direction());
                if (m.direction().toDevice()) {
                    System.arraycopy(ramModel, m.origOffset() + rel, m.slots(), rel, length);
                }
            } else {
                pool.syncForCpu(m.dma() + rel, length, m.direction());
                if (m.direction().fromDevice()) {
                    System.arraycopy(m.slots(), rel, ramModel, m.origOffset() + rel, length);
                }
            }
            assertArrayEquals(m.slots(), TestVm.bytes(vm.deviceView(m.dma(), m.sizeBytes())));
            checkOriginal(m);
        }

        private void unmap(Live m) {
            pool.unmapSingle(m.dma(), m.sizeBytes(), m.direction());
            live.remove(m);
            if (m.direction().fromDevice()) {
                System.arraycopy(m.slots(), 0, ramModel, m.origOffset(), m.sizeBytes());
            }
            checkOriginal(m);
        }

        private void checkOriginal(Live m) {
            MemorySegment orig = ram.asSlice(m.origOffset(), m.sizeBytes());
            assertArrayEquals(Arrays.copyOfRange(ramModel, m.origOffset(), m.origOffset() + m.sizeBytes()), TestVm.bytes(orig));
        }

        private void wrongCall(WrongCall w) {
            if (live.isEmpty()) {
                assertThrows(IllegalArgumentException.class,
                        () -> pool.unmapSingle(pool.dmaBase() + random.nextInt((int) pool.sizeBytes()), 1, DmaDirection.TO_DEVICE));
                return;
            }
            Live m = live.get(w.which() % live.size());
            DmaDirection other = DmaDirection.values()[(m.direction().ordinal() + 1) % 3];
            switch (w.kind()) {
                case 0 -> assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(m.dma(), m.sizeBytes() + 1, m.direction()));
                case 1 -> assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(m.dma(), m.sizeBytes(), other));
                case 2 -> assertThrows(IllegalArgumentException.class, () -> pool.syncForCpu(m.dma(), m.sizeBytes() + 1, m.direction()));
                case 3 -> assertThrows(IllegalArgumentException.class,
                        () -> pool.syncForDevice(m.dma() + m.sizeBytes(), Long.MAX_VALUE, m.direction()));
                default -> {
                    if (m.sizeBytes() > 1) {
                        assertThrows(IllegalArgumentException.class, () -> pool.unmapSingle(m.dma() + 1, m.sizeBytes() - 1, m.direction()));
                    }
                }
            }
            assertArrayEquals(m.slots(), TestVm.bytes(vm.deviceView(m.dma(), m.sizeBytes())));
        }
    }
}
