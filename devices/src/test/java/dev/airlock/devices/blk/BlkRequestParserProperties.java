package dev.airlock.devices.blk;

import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtioProtocolException;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Random;
import java.util.stream.LongStream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The parser on random hostile chains: random buffer layouts, types, sectors, lengths, segments and
 * flags. It never throws except for a chain without a writable byte, and whatever it accepts obeys
 * every limit. One seed per case: {@code -Dairlock.seed=N}, {@code -Dairlock.tries=N}.
 */
class BlkRequestParserProperties {
    private static final long CAPACITY = 4096;
    private static final int[] TYPES = {BlkRequestLayout.VIRTIO_BLK_T_IN, BlkRequestLayout.VIRTIO_BLK_T_OUT,
        BlkRequestLayout.VIRTIO_BLK_T_FLUSH, BlkRequestLayout.VIRTIO_BLK_T_GET_ID, BlkRequestLayout.VIRTIO_BLK_T_DISCARD,
        BlkRequestLayout.VIRTIO_BLK_T_WRITE_ZEROES};

    static LongStream seeds() {
        String one = System.getProperty("airlock.seed");
        return one != null ? LongStream.of(Long.parseLong(one))
                : LongStream.range(0, Integer.getInteger("airlock.tries", 16)).map(i -> i * 0x9E3779B97F4A7C15L + 5);
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void shouldAcceptOnlyRequestsWithinEveryLimit(long seed) {
        Random rnd = new Random(seed);
        BlkOptions options = BlkOptions.builder(Path.of("/nonexistent/disk.img")).readOnly(rnd.nextInt(4) == 0)
                .segMax(1 + rnd.nextInt(4)).sizeMax(512 << rnd.nextInt(4)).discardLimits(1 + rnd.nextInt(64), 1 + rnd.nextInt(3))
                .writeZeroesLimits(1 + rnd.nextInt(64), 1 + rnd.nextInt(3), rnd.nextBoolean()).build();
        long features = rnd.nextBoolean() ? VirtioFeatures.of(BlkConfigLayout.VIRTIO_BLK_F_FLUSH, BlkConfigLayout.VIRTIO_BLK_F_DISCARD,
                BlkConfigLayout.VIRTIO_BLK_F_WRITE_ZEROES) : VirtioFeatures.bit(BlkConfigLayout.VIRTIO_BLK_F_DISCARD);
        BlkRequestParser parser = new BlkRequestParser("prop.q0", CAPACITY, options, features);
        int accepted = 0;
        try (ChainBed bed = new ChainBed()) {
            for (int i = 0; i < 300; i++) {
                DescriptorChain chain = randomChain(bed, rnd);
                if (chain.writableCount() == 0) {
                    assertThrows(VirtioProtocolException.class, () -> parser.parse(chain));
                } else {
                    BlkRequest request = parser.parse(chain);
                    check(request, options, features);
                    accepted += request instanceof BlkRequest.Rejected ? 0 : 1;
                }
                bed.complete(chain);
            }
        }
        assertTrue(accepted >= 10, "the generator reaches the accepting paths: " + accepted + " of 300 accepted");
    }

    /** Half the time a well-formed request of a known type (limits may still refuse it), else anything. */
    private static DescriptorChain randomChain(ChainBed bed, Random rnd) {
        return rnd.nextBoolean() ? wellFormedChain(bed, rnd) : hostileChain(bed, rnd);
    }

    private static DescriptorChain wellFormedChain(ChainBed bed, Random rnd) {
        int type = TYPES[rnd.nextInt(TYPES.length)];
        bed.chain().out(bed.header(type, rnd.nextInt((int) CAPACITY - 16)), 16);
        switch (type) {
            case BlkRequestLayout.VIRTIO_BLK_T_IN -> {
                for (int k = 0, n = 1 + rnd.nextInt(3); k < n; k++) {
                    bed.in(512L * (1 + rnd.nextInt(2)));
                }
            }
            case BlkRequestLayout.VIRTIO_BLK_T_OUT -> {
                for (int k = 0, n = 1 + rnd.nextInt(3); k < n; k++) {
                    bed.out(512L * (1 + rnd.nextInt(2)));
                }
            }
            case BlkRequestLayout.VIRTIO_BLK_T_GET_ID -> bed.in(BlkRequestLayout.VIRTIO_BLK_ID_BYTES);
            case BlkRequestLayout.VIRTIO_BLK_T_DISCARD, BlkRequestLayout.VIRTIO_BLK_T_WRITE_ZEROES -> {
                int n = 1 + rnd.nextInt(2);
                long[] triples = new long[3 * n];
                for (int k = 0; k < n; k++) {
                    triples[3 * k] = rnd.nextInt((int) CAPACITY - 64);
                    triples[3 * k + 1] = 1 + rnd.nextInt(64);
                    triples[3 * k + 2] = type == BlkRequestLayout.VIRTIO_BLK_T_WRITE_ZEROES ? rnd.nextInt(2) : 0;
                }
                bed.out(bed.segments(triples), 16L * n);
            }
            default -> { }
        }
        return bed.in(1).pop();
    }

    private static DescriptorChain hostileChain(ChainBed bed, Random rnd) {
        bed.chain();
        int readable = rnd.nextInt(4);
        int writable = rnd.nextInt(4);
        if (readable + writable == 0) {
            readable = 1;
        }
        long header = bed.alloc(16);
        int type = rnd.nextInt(5) == 0 ? rnd.nextInt() : TYPES[rnd.nextInt(TYPES.length)];
        long sector = switch (rnd.nextInt(4)) {
            case 0 -> rnd.nextLong();
            case 1 -> CAPACITY - rnd.nextInt(8);
            default -> rnd.nextInt((int) CAPACITY);
        };
        BlkRequestLayout.writeHeader(bed.ram(header, 16), type, sector);
        for (int k = 0; k < readable; k++) {
            long length = k == 0 ? (rnd.nextInt(5) == 0 ? 1 + rnd.nextInt(16) : 16) : randomLength(rnd);
            long gpa = k == 0 ? header : bed.alloc(length);
            if (k > 0 && rnd.nextBoolean()) {
                randomSegments(bed.ram(gpa, length), rnd, sector);
            }
            bed.out(gpa, length);
        }
        for (int k = 0; k < writable; k++) {
            bed.in(randomLength(rnd));
        }
        return bed.pop();
    }

    private static long randomLength(Random rnd) {
        return switch (rnd.nextInt(4)) {
            case 0 -> 1 + rnd.nextInt(40);
            case 1 -> 16L * (1 + rnd.nextInt(4));
            case 2 -> 512L * (1 + rnd.nextInt(8));
            default -> 512L * (1 + rnd.nextInt(8)) + 1;
        };
    }

    private static void randomSegments(MemorySegment data, Random rnd, long sector) {
        for (long at = 0; at + 16 <= data.byteSize(); at += 16) {
            int flags = rnd.nextInt(4) == 0 ? rnd.nextInt() : rnd.nextInt(2);
            long s = rnd.nextInt(3) == 0 ? rnd.nextLong() : sector;
            BlkRequestLayout.writeSegment(data.asSlice(at, 16), s, rnd.nextInt(3) == 0 ? rnd.nextInt() : rnd.nextInt(80), flags);
        }
    }

    private static void check(BlkRequest request, BlkOptions options, long features) {
        assertEquals(1, request.status().byteSize());
        switch (request) {
            case BlkRequest.Read r -> checkData(r.sector(), r.data(), r.dataBytes(), options);
            case BlkRequest.Write w -> {
                assertTrue(!options.readOnly(), "a write accepted on a read-only device");
                checkData(w.sector(), w.data(), w.dataBytes(), options);
            }
            case BlkRequest.Flush f -> assertTrue(VirtioFeatures.has(features, BlkConfigLayout.VIRTIO_BLK_F_FLUSH));
            case BlkRequest.GetId g -> assertTrue(g.id().stream().mapToLong(MemorySegment::byteSize).sum() <= 20);
            case BlkRequest.Discard d -> {
                assertTrue(!options.readOnly() && d.ranges().size() <= options.maxDiscardSeg());
                d.ranges().forEach(r -> checkRange(r, options.maxDiscardSectors(), false));
            }
            case BlkRequest.WriteZeroes z -> {
                assertTrue(!options.readOnly() && z.ranges().size() <= options.maxWriteZeroesSeg());
                assertTrue(VirtioFeatures.has(features, BlkConfigLayout.VIRTIO_BLK_F_WRITE_ZEROES));
                z.ranges().forEach(r -> checkRange(r, options.maxWriteZeroesSectors(), true));
            }
            case BlkRequest.Rejected r -> assertTrue(r.statusCode() == BlkRequestLayout.VIRTIO_BLK_S_IOERR
                    || r.statusCode() == BlkRequestLayout.VIRTIO_BLK_S_UNSUPP, r.reason());
        }
    }

    private static void checkData(long sector, java.util.List<MemorySegment> data, long dataBytes, BlkOptions options) {
        assertTrue(dataBytes > 0 && dataBytes % 512 == 0, "data " + dataBytes);
        assertTrue(sector >= 0 && sector + dataBytes / 512 <= CAPACITY, "sector " + sector + " + " + dataBytes);
        assertEquals(dataBytes, data.stream().mapToLong(MemorySegment::byteSize).sum());
        assertTrue(data.size() <= options.segMax());
        assertTrue(data.stream().allMatch(s -> s.byteSize() <= options.sizeMax()));
    }

    private static void checkRange(BlkRequest.Range r, long maxSectors, boolean unmapAllowed) {
        assertTrue(r.sector() >= 0 && r.numSectors() <= maxSectors && r.sector() + r.numSectors() <= CAPACITY, r.toString());
        assertTrue(unmapAllowed || !r.unmap(), "unmap on a discard");
    }
}
