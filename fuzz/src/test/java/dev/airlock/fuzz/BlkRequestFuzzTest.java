package dev.airlock.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.airlock.devices.blk.BlkConfigLayout;
import dev.airlock.devices.blk.BlkOptions;
import dev.airlock.devices.blk.BlkRequest;
import dev.airlock.devices.blk.BlkRequestLayout;
import dev.airlock.devices.blk.BlkRequestParser;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.GuestRange;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtioProtocolException;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The virtio-blk request parser against whatever chains a hostile driver can offer. The input is a
 * device shape (features, capacity, limits), then ring bytes plus memory bytes as
 * {@link FuzzQueue} lays them out; every chain the queue hands over is parsed.
 *
 * <p>Invariants: {@link BlkRequestParser#parse} throws {@link VirtioProtocolException} exactly when
 * the chain has no device-writable byte, and nothing else; a rejection carries IOERR or UNSUPP; an
 * accepted request is inside the capacity, the negotiated features and every configured limit, its
 * buffers are exactly the chain's data bytes in order (the readable bytes after the header for a
 * write, the writable bytes before the status for a read or GET_ID) inside the shared region, and
 * the status is the chain's last writable byte. (A guest may point descriptors at overlapping
 * memory, so the status may alias its own data: that harms only the guest.)
 *
 * <pre>
 *  header (16 bytes, then the ring part of FuzzQueue):
 *  [0]     bit 0 INDIRECT_DESC, 1 EVENT_IDX, 2 FLUSH, 3 DISCARD, 4 WRITE_ZEROES, 5 read-only, 6 may unmap
 *  [1]     log2 queue size (mod 9)
 *  [2..9]  capacity in sectors (le64, low 54 bits)
 *  [10]    seg_max - 1          [11] log2(size_max / 512) (mod 13)
 *  [12]    max_discard_seg - 1  [13] max_write_zeroes_seg - 1
 *  [14]    log2 max_discard_sectors (mod 33, capped at 2^32 - 1)
 *  [15]    log2 max_write_zeroes_sectors (mod 33, capped at 2^32 - 1)
 * </pre>
 */
class BlkRequestFuzzTest {
    private static final int HEADER_BYTES = 16;

    @FuzzTest(maxDuration = "60s")
    void parseAcceptsOnlyRequestsWithinTheLimits(byte[] input) {
        ByteBuffer in = ByteBuffer.wrap(input.length >= HEADER_BYTES ? input : Arrays.copyOf(input, HEADER_BYTES))
                .order(ByteOrder.LITTLE_ENDIAN);
        int shape = in.get() & 0xff;
        int queueSize = 1 << ((in.get() & 0xff) % 9);
        long capacity = in.getLong() & ((1L << 54) - 1);
        int segMax = 1 + (in.get() & 0xff);
        int sizeMax = BlkRequestLayout.SECTOR_SIZE << ((in.get() & 0xff) % 13);
        int maxDiscardSeg = 1 + (in.get() & 0xff);
        int maxWriteZeroesSeg = 1 + (in.get() & 0xff);
        BlkOptions options = BlkOptions.builder(Path.of("fuzz.img"))
                .readOnly((shape & 0x20) != 0)
                .segMax(segMax)
                .sizeMax(sizeMax)
                .discardLimits(sectorLimit(in.get()), maxDiscardSeg)
                .writeZeroesLimits(sectorLimit(in.get()), maxWriteZeroesSeg, (shape & 0x40) != 0)
                .build();
        long features = FuzzQueue.ringFeatures(shape)
                | ((shape & 0x04) != 0 ? VirtioFeatures.of(BlkConfigLayout.VIRTIO_BLK_F_FLUSH) : 0)
                | ((shape & 0x08) != 0 ? VirtioFeatures.of(BlkConfigLayout.VIRTIO_BLK_F_DISCARD) : 0)
                | ((shape & 0x10) != 0 ? VirtioFeatures.of(BlkConfigLayout.VIRTIO_BLK_F_WRITE_ZEROES) : 0);
        BlkRequestParser parser = new BlkRequestParser("fuzz.blk", capacity, options, features);
        try (FuzzQueue queue = new FuzzQueue(in, queueSize, features)) {
            queue.forEachChain(chain -> parseAndCheck(parser, queue, chain, capacity, options, features));
        }
    }

    private static long sectorLimit(byte b) {
        return Math.min(1L << ((b & 0xff) % 33), 0xffff_ffffL);
    }

    private static void parseAndCheck(BlkRequestParser parser, FuzzQueue queue, DescriptorChain chain, long capacity,
                                      BlkOptions options, long features) {
        BlkRequest request;
        try {
            request = parser.parse(chain);
        } catch (VirtioProtocolException e) {
            assertEquals(0, chain.writableCount(), "only a chain without a writable byte is unanswerable: " + e.getMessage());
            return;
        }
        assertTrue(chain.writableCount() > 0, "a chain without a writable byte was answered");
        GuestRange last = chain.writable(chain.writableCount() - 1);
        MemorySegment status = request.status();
        assertEquals(1, status.byteSize(), "status is one byte");
        assertEquals(last.segment().address() + last.lengthBytes() - 1, status.address(), "status is the last writable byte");
        assertTrue(queue.contains(status), "status inside the region");
        switch (request) {
            case BlkRequest.Rejected r -> assertTrue(r.statusCode() == BlkRequestLayout.VIRTIO_BLK_S_IOERR
                    || r.statusCode() == BlkRequestLayout.VIRTIO_BLK_S_UNSUPP, "rejected with IOERR or UNSUPP: " + r);
            case BlkRequest.Read r -> {
                assertEquals(chain.readableBytes(), BlkRequestLayout.HEADER_LENGTH, "a read carries only the header");
                assertEquals(chain.writableBytes() - 1, r.dataBytes(), "a read fills every writable byte but the status");
                checkData(queue, r.sector(), r.data(), r.dataBytes(), capacity, options);
                checkStream(r.data(), chain.writableRanges(), 0, r.dataBytes());
            }
            case BlkRequest.Write w -> {
                assertFalse(options.readOnly(), "a write accepted on a read-only device");
                assertEquals(1, chain.writableBytes(), "a write has only the status writable");
                assertEquals(chain.readableBytes() - BlkRequestLayout.HEADER_LENGTH, w.dataBytes());
                checkData(queue, w.sector(), w.data(), w.dataBytes(), capacity, options);
                checkStream(w.data(), chain.readableRanges(), BlkRequestLayout.HEADER_LENGTH, w.dataBytes());
            }
            case BlkRequest.Flush f -> {
                assertTrue(VirtioFeatures.has(features, BlkConfigLayout.VIRTIO_BLK_F_FLUSH), "FLUSH not negotiated");
                assertEquals(BlkRequestLayout.HEADER_LENGTH, chain.readableBytes());
                assertEquals(1, chain.writableBytes());
            }
            case BlkRequest.GetId g -> {
                long idBytes = g.id().stream().mapToLong(MemorySegment::byteSize).sum();
                assertTrue(idBytes > 0 && idBytes <= BlkRequestLayout.VIRTIO_BLK_ID_BYTES, "id buffer of " + idBytes + " bytes");
                checkStream(g.id(), chain.writableRanges(), 0, idBytes);
                assertTrue(idBytes == Math.min(chain.writableBytes() - 1, BlkRequestLayout.VIRTIO_BLK_ID_BYTES), "id length");
            }
            case BlkRequest.Discard d -> {
                assertTrue(VirtioFeatures.has(features, BlkConfigLayout.VIRTIO_BLK_F_DISCARD), "DISCARD not negotiated");
                checkRanges(d.ranges(), capacity, options.maxDiscardSeg(), options.maxDiscardSectors(), options, false);
            }
            case BlkRequest.WriteZeroes z -> {
                assertTrue(VirtioFeatures.has(features, BlkConfigLayout.VIRTIO_BLK_F_WRITE_ZEROES), "WRITE_ZEROES not negotiated");
                checkRanges(z.ranges(), capacity, options.maxWriteZeroesSeg(), options.maxWriteZeroesSectors(), options, true);
            }
        }
    }

    private static void checkData(FuzzQueue queue, long sector, List<MemorySegment> data, long dataBytes, long capacity,
                                  BlkOptions options) {
        assertTrue(dataBytes > 0 && dataBytes % BlkRequestLayout.SECTOR_SIZE == 0, "data of " + dataBytes + " bytes");
        assertTrue(Long.compareUnsigned(sector, capacity) <= 0 && dataBytes / BlkRequestLayout.SECTOR_SIZE <= capacity - sector,
                "sectors " + Long.toUnsignedString(sector) + " + " + dataBytes / BlkRequestLayout.SECTOR_SIZE + " pass " + capacity);
        assertTrue(data.size() <= options.segMax(), data.size() + " buffers above seg_max " + options.segMax());
        long sum = 0;
        for (MemorySegment s : data) {
            assertTrue(s.byteSize() > 0 && s.byteSize() <= options.sizeMax(), "buffer of " + s.byteSize() + " bytes");
            sum += s.byteSize();
        }
        assertEquals(dataBytes, sum, "buffers add up to the data length");
        for (MemorySegment s : data) {
            assertTrue(queue.contains(s), "buffer inside the region");
        }
    }

    /** Checks that {@code buffers} are exactly the bytes {@code [start, start + length)} of the chain's stream of {@code ranges}. */
    private static void checkStream(List<MemorySegment> buffers, List<GuestRange> ranges, long start, long length) {
        List<String> expected = new ArrayList<>();
        long skip = start;
        long remaining = length;
        for (GuestRange r : ranges) {
            if (remaining == 0) {
                break;
            }
            if (skip >= r.lengthBytes()) {
                skip -= r.lengthBytes();
                continue;
            }
            long n = Math.min(r.lengthBytes() - skip, remaining);
            expected.add(Long.toHexString(r.segment().address() + skip) + "+" + n);
            remaining -= n;
            skip = 0;
        }
        assertEquals(0, remaining, "the stream holds the data");
        List<String> actual = buffers.stream().map(b -> Long.toHexString(b.address()) + "+" + b.byteSize()).toList();
        assertEquals(expected, actual, "buffers are the chain's data bytes, in order");
    }

    private static void checkRanges(List<BlkRequest.Range> ranges, long capacity, long maxSeg, long maxSectors,
                                    BlkOptions options, boolean writeZeroes) {
        assertFalse(options.readOnly(), "a discard or write-zeroes accepted on a read-only device");
        assertTrue(!ranges.isEmpty() && ranges.size() <= maxSeg, ranges.size() + " segments, limit " + maxSeg);
        for (BlkRequest.Range r : ranges) {
            assertTrue(r.numSectors() >= 0 && r.numSectors() <= maxSectors, r + " above " + maxSectors + " sectors");
            assertTrue(Long.compareUnsigned(r.sector(), capacity) <= 0 && r.numSectors() <= capacity - r.sector(),
                    r + " passes the capacity " + capacity);
            assertTrue(writeZeroes || !r.unmap(), "unmap flag on a discard");
        }
    }
}
