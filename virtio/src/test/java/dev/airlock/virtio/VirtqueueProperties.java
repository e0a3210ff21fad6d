package dev.airlock.virtio;

import dev.airlock.dma.CoherentBuffer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Randomized invariants, each case driven by one seed (shown in the test name, so a failure is
 * rerun exactly by that seed). Set {@code -Dairlock.seed=N} to run a single seed.
 */
class VirtqueueProperties {
    private static final long VERSION_1 = VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_VERSION_1);

    static LongStream seeds() {
        String one = System.getProperty("airlock.seed");
        return one != null ? LongStream.of(Long.parseLong(one)) : LongStream.range(0, 300).map(i -> i * 0x9E3779B97F4A7C15L + 1);
    }

    static LongStream fewerSeeds() {
        return seeds().limit(100);
    }

    /** Random batches of adds, pops, out-of-order completions, reaps and notification toggles. */
    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void shouldDeliverEveryRequestExactlyOnceWithDataIntact(long seed) {
        Random rnd = new Random(seed);
        int size = 1 << rnd.nextInt(9);
        boolean bounce = rnd.nextBoolean();
        long features = VERSION_1
                | (rnd.nextBoolean() ? VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_INDIRECT_DESC) : 0)
                | (rnd.nextBoolean() ? VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_EVENT_IDX) : 0);
        int maxBuffers = Math.min(size, 4);
        int maxIndirect = rnd.nextInt(size + 1);
        long coherent = 32L * size + 4096L * 4 + 16L * maxIndirect * size;
        try (TestBed bed = new TestBed(bounce ? TestDmaOps.Mode.BOUNCE : TestDmaOps.Mode.DIRECT, coherent, size * maxBuffers + 8, 1024)) {
            VirtqueueDriver<EchoRequest> driver = new VirtqueueDriver<>("prop", bed.dma, size, features, maxIndirect);
            VirtqueueDevice device = bed.device(driver, features);
            ScatterGather sg = new ScatterGather(1);
            List<EchoRequest> all = new ArrayList<>();
            List<DescriptorChain> popped = new ArrayList<>();
            VirtqueueDriver.UsedHandler<EchoRequest> handler = (request, len) -> request.complete(bed, len);
            for (int step = 0; step < 200; step++) {
                switch (rnd.nextInt(5)) {
                    case 0 -> addBatch(bed, rnd, driver, sg, all, maxBuffers);
                    case 1 -> popBatch(rnd, device, popped);
                    case 2 -> completeSome(rnd, device, popped);
                    case 3 -> driver.reap(handler, 1 + rnd.nextInt(size + 1));
                    default -> toggleNotifications(rnd, driver, device);
                }
            }
            for (int round = 0; driver.inFlight() > 0; round++) {
                assertTrue(round < 4, "did not drain");
                for (DescriptorChain chain; (chain = device.pop()) != null; ) {
                    popped.add(chain);
                }
                Collections.shuffle(popped, rnd);
                for (DescriptorChain chain : popped) {
                    device.addUsed(chain, EchoRequest.echo(chain));
                }
                popped.clear();
                device.publishUsed();
                while (driver.reap(handler, size) > 0) {
                    // drain
                }
            }
            assertFalse(driver.isBroken(), () -> String.valueOf(driver.fault()));
            assertFalse(device.isBroken(), () -> String.valueOf(device.fault()));
            assertTrue(all.stream().allMatch(r -> r.done));
            assertEquals(size, driver.numFree());
            assertEquals(0, bed.dma.liveMappings());
            driver.close();
            assertEquals(0, bed.dma.coherentLive());
        }
    }

    private static void addBatch(TestBed bed, Random rnd, VirtqueueDriver<EchoRequest> driver, ScatterGather sg,
                                 List<EchoRequest> all, int maxBuffers) {
        int k = 1 + rnd.nextInt(driver.size());
        for (int i = 0; i < k; i++) {
            EchoRequest request = EchoRequest.random(bed, rnd, all.size(), maxBuffers);
            request.fill(sg);
            if (!driver.add(sg, request)) {
                request.free(bed);
                break;
            }
            all.add(request);
        }
        driver.kickPrepare();
    }

    private static void popBatch(Random rnd, VirtqueueDevice device, List<DescriptorChain> popped) {
        int k = 1 + rnd.nextInt(device.size());
        for (int i = 0; i < k; i++) {
            DescriptorChain chain = device.pop();
            if (chain == null) {
                break;
            }
            popped.add(chain);
        }
    }

    private static void completeSome(Random rnd, VirtqueueDevice device, List<DescriptorChain> popped) {
        Collections.shuffle(popped, rnd);
        int m = rnd.nextInt(popped.size() + 1);
        for (int i = 0; i < m; i++) {
            DescriptorChain chain = popped.removeLast();
            device.addUsed(chain, EchoRequest.echo(chain));
            if (rnd.nextInt(4) == 0) {
                device.publishUsed();
            }
        }
        if (rnd.nextBoolean()) {
            device.publishUsed();
            device.needsInterrupt();
        }
    }

    private static void toggleNotifications(Random rnd, VirtqueueDriver<EchoRequest> driver, VirtqueueDevice device) {
        switch (rnd.nextInt(4)) {
            case 0 -> driver.disableCallbacks();
            case 1 -> driver.enableCallbacks();
            case 2 -> device.disableNotifications();
            default -> device.enableNotifications();
        }
    }

    /**
     * Random descriptor tables (random addresses, lengths, flags, next pointers, indirect tables
     * with random contents, random avail entries): every pop returns a chain that obeys the
     * invariants, or null, or throws {@link VirtioProtocolException}; nothing else, and it ends.
     */
    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void chainWalkingAlwaysTerminates(long seed) {
        Random rnd = new Random(seed);
        int size = 1 << rnd.nextInt(6);
        long features = VERSION_1 | (rnd.nextBoolean() ? VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_INDIRECT_DESC) : 0);
        try (TestBed bed = new TestBed(TestDmaOps.Mode.DIRECT, 1 << 16, 16, 4096)) {
            RawDriverRings rings = new RawDriverRings(bed, size);
            List<CoherentBuffer> tables = new ArrayList<>();
            for (int t = 0; t < 3; t++) {
                tables.add(rings.indirectTable(1 + rnd.nextInt(2 * size)));
            }
            long buf = bed.allocBuffer();
            for (int i = 0; i < size; i++) {
                randomDesc(rnd, rings.desc.segment(), i, size, buf, tables);
            }
            for (CoherentBuffer table : tables) {
                for (int i = 0; i < table.sizeBytes() / 16; i++) {
                    randomDesc(rnd, table.segment(), i, size, buf, tables);
                }
            }
            int[] heads = new int[rnd.nextInt(size + 1)];
            for (int i = 0; i < heads.length; i++) {
                heads[i] = rnd.nextInt(10) == 0 ? rnd.nextInt(0x10000) : rnd.nextInt(size);
            }
            rings.makeAvailable(heads);
            if (rnd.nextInt(10) == 0) {
                rings.setAvailIdx(rnd.nextInt(0x10000));
            }
            VirtqueueDevice device = rings.device(features);
            long deviceBase = bed.deviceMapping.segment().address();
            long deviceEnd = deviceBase + bed.deviceMapping.segment().byteSize();
            for (int i = 0; i <= size; i++) {
                DescriptorChain chain;
                try {
                    chain = device.pop();
                } catch (VirtioProtocolException e) {
                    assertTrue(device.isBroken());
                    assertEquals(e.fault(), device.fault());
                    return;
                }
                if (chain == null) {
                    return;
                }
                assertTrue(chain.descriptorCount() <= size);
                assertTrue(chain.readableBytes() + chain.writableBytes() < (1L << 32));
                for (GuestRange r : chain.readableRanges()) {
                    assertTrue(r.segment().address() >= deviceBase && r.segment().address() + r.lengthBytes() <= deviceEnd);
                }
                for (GuestRange r : chain.writableRanges()) {
                    assertTrue(r.segment().address() >= deviceBase && r.segment().address() + r.lengthBytes() <= deviceEnd);
                }
            }
            assertNull(device.pop(), "more chains than were made available");
        }
    }

    private static void randomDesc(Random rnd, java.lang.foreign.MemorySegment table, int index, int size, long buf,
                                   List<CoherentBuffer> tables) {
        int flags = rnd.nextInt(20) == 0 ? rnd.nextInt(0x10000) : rnd.nextInt(8);
        if (rnd.nextInt(3) != 0) {
            flags &= ~VirtqDescLayout.VIRTQ_DESC_F_INDIRECT;
        }
        long addr;
        long len;
        if ((flags & VirtqDescLayout.VIRTQ_DESC_F_INDIRECT) != 0 && rnd.nextInt(4) != 0) {
            CoherentBuffer t = tables.get(rnd.nextInt(tables.size()));
            addr = t.dmaAddr();
            len = rnd.nextInt(4) == 0 ? rnd.nextInt(100) : t.sizeBytes();
        } else {
            addr = switch (rnd.nextInt(6)) {
                case 0 -> rnd.nextLong();
                case 1 -> TestBed.PRIVATE_GPA;
                default -> buf + rnd.nextInt(4096);
            };
            len = switch (rnd.nextInt(6)) {
                case 0 -> Integer.toUnsignedLong(rnd.nextInt());
                case 1 -> 0;
                default -> rnd.nextInt(64);
            };
        }
        int next = rnd.nextInt(8) == 0 ? rnd.nextInt(0x10000) : rnd.nextInt(Math.max(1, size + 1));
        RawDriverRings.writeDesc(table, index, addr, len, flags, next);
    }

    /**
     * Index wrap-around at 2^16 for every queue size: both sides start their free-running counters
     * just below the wrap, then the queue is filled and drained until the counters have wrapped,
     * with indirect tables and event index each on and off.
     */
    @ParameterizedTest(name = "size {0}")
    @MethodSource("queueSizes")
    void shouldWrapIndicesAt2To16(int size) {
        for (int variant = 0; variant < 4; variant++) {
            long features = VERSION_1
                    | ((variant & 1) != 0 ? VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_INDIRECT_DESC) : 0)
                    | ((variant & 2) != 0 ? VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_EVENT_IDX) : 0);
            runAcrossTheWrap(size, features, new Random(size * 31L + variant));
        }
    }

    static int[] queueSizes() {
        int[] sizes = new int[16];
        for (int i = 0; i < 16; i++) {
            sizes[i] = 1 << i;
        }
        return sizes;
    }

    private static void runAcrossTheWrap(int size, long features, Random rnd) {
        int maxBuffers = Math.min(size, 2);
        long coherent = 16L * size + 8L * size + 64L * size + (1 << 16);
        try (TestBed bed = new TestBed(TestDmaOps.Mode.DIRECT, coherent, size * maxBuffers + 2, 64)) {
            VirtqueueDriver<EchoRequest> driver = new VirtqueueDriver<>("wrap", bed.dma, size, features, Math.min(size, 2));
            VirtqueueDevice device = bed.device(driver, features);
            int start = (0x10000 - size - size / 2 - 1) & 0xffff;
            driver.startIndicesAt(start);
            device.startIndicesAt(start);
            ScatterGather sg = new ScatterGather(2);
            List<DescriptorChain> popped = new ArrayList<>(size);
            long total = 0;
            long completed = 0;
            long target = 3L * size + 3;
            while (total < target) {
                for (; total < target; total++) {
                    EchoRequest request = EchoRequest.random(bed, rnd, total, maxBuffers);
                    request.fill(sg);
                    if (!driver.add(sg, request)) {
                        request.free(bed);
                        break;
                    }
                }
                driver.kickPrepare();
                for (DescriptorChain chain; (chain = device.pop()) != null; ) {
                    popped.add(chain);
                }
                Collections.shuffle(popped, rnd);
                for (DescriptorChain chain : popped) {
                    device.addUsed(chain, EchoRequest.echo(chain));
                }
                popped.clear();
                device.publishUsed();
                device.needsInterrupt();
                completed += driver.reap((request, len) -> request.complete(bed, len), size);
                assertFalse(driver.isBroken(), () -> String.valueOf(driver.fault()));
            }
            assertEquals(total, completed);
            assertEquals((start + total) & 0xffff, device.nextAvail());
            assertEquals((start + total) & 0xffff, device.nextUsed());
            assertTrue(start + total > 0xffff, "the counters wrapped");
            assertEquals(0, bed.dma.liveMappings());
        }
    }
}
