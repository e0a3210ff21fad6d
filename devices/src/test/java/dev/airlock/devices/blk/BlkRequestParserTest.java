package dev.airlock.devices.blk;

import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtioProtocolException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_S_IOERR;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_S_UNSUPP;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_T_DISCARD;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_T_FLUSH;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_T_GET_ID;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_T_IN;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_T_OUT;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_T_WRITE_ZEROES;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The request parser against well-formed requests and against each rejection rule, on real chains. */
class BlkRequestParserTest {
    private static final long CAPACITY = 1000;
    private static final long ALL = VirtioFeatures.of(BlkConfigLayout.VIRTIO_BLK_F_FLUSH, BlkConfigLayout.VIRTIO_BLK_F_DISCARD,
            BlkConfigLayout.VIRTIO_BLK_F_WRITE_ZEROES);
    private static final BlkOptions OPTIONS = BlkOptions.builder(Path.of("/nonexistent/disk.img")).segMax(4).sizeMax(4096)
            .discardLimits(100, 2).writeZeroesLimits(200, 2, true).build();

    private final ChainBed bed = new ChainBed();
    private final BlkRequestParser parser = new BlkRequestParser("test.q0", CAPACITY, OPTIONS, ALL);

    @AfterEach
    void close() {
        bed.close();
    }

    private static BlkRequest.Rejected rejected(BlkRequest request, int status) {
        BlkRequest.Rejected r = assertInstanceOf(BlkRequest.Rejected.class, request);
        assertEquals(status, r.statusCode(), r.reason());
        return r;
    }

    private DescriptorChain read(long sector, long... dataLengths) {
        bed.chain().out(bed.header(VIRTIO_BLK_T_IN, sector), 16);
        for (long n : dataLengths) {
            bed.in(n);
        }
        return bed.in(1).pop();
    }

    private DescriptorChain write(long sector, long... dataLengths) {
        bed.chain().out(bed.header(VIRTIO_BLK_T_OUT, sector), 16);
        for (long n : dataLengths) {
            bed.out(n);
        }
        return bed.in(1).pop();
    }

    private DescriptorChain ranges(int type, long... triples) {
        return bed.chain().out(bed.header(type, 0), 16).out(bed.segments(triples), triples.length / 3 * 16L).in(1).pop();
    }

    @Test
    void shouldParseAReadIntoDataSlicesAndAStatusByte() {
        BlkRequest.Read r = assertInstanceOf(BlkRequest.Read.class, parser.parse(read(7, 512, 1024)));
        assertEquals(7, r.sector());
        assertEquals(1536, r.dataBytes());
        assertEquals(2, r.data().size());
        assertEquals(1, r.status().byteSize());
    }

    @Test
    void shouldParseAWriteWhoseHeaderSharesADescriptorWithData() {
        long buffer = bed.alloc(16 + 512);
        BlkRequestLayout.writeHeader(bed.ram(buffer, 16), VIRTIO_BLK_T_OUT, 3);
        bed.ram(buffer + 16, 512).fill((byte) 0x42);
        DescriptorChain chain = bed.chain().out(buffer, 16 + 512).in(1).pop();
        BlkRequest.Write w = assertInstanceOf(BlkRequest.Write.class, parser.parse(chain));
        assertEquals(3, w.sector());
        assertEquals(512, w.dataBytes());
        assertEquals(0x42, w.data().getFirst().get(ValueLayout.JAVA_BYTE, 511));
    }

    @Test
    void shouldParseAReadWhoseStatusSharesADescriptorWithData() {
        DescriptorChain chain = bed.chain().out(bed.header(VIRTIO_BLK_T_IN, 0), 16).in(513).pop();
        BlkRequest.Read r = assertInstanceOf(BlkRequest.Read.class, parser.parse(chain));
        assertEquals(512, r.dataBytes());
    }

    @Test
    void shouldAcceptTheLastSectorsOfTheDisk() {
        assertInstanceOf(BlkRequest.Read.class, parser.parse(read(CAPACITY - 2, 1024)));
    }

    @Test
    void rejectsAChainWithoutAWritableStatusByteAsAProtocolViolation() {
        DescriptorChain chain = bed.chain().out(bed.header(VIRTIO_BLK_T_FLUSH, 0), 16).pop();
        VirtioProtocolException e = assertThrows(VirtioProtocolException.class, () -> parser.parse(chain));
        assertTrue(e.fault().field().endsWith(".status"), e.getMessage());
    }

    @Test
    void rejectsAHeaderShorterThan16Bytes() {
        BlkRequest.Rejected r = rejected(parser.parse(bed.chain().out(8).in(1).pop()), VIRTIO_BLK_S_IOERR);
        assertEquals(-1, r.type());
    }

    @Test
    void rejectsAnUnknownTypeAsUnsupported() {
        rejected(parser.parse(bed.chain().out(bed.header(99, 0), 16).in(1).pop()), VIRTIO_BLK_S_UNSUPP);
    }

    @Test
    void rejectsDataThatIsNotAMultipleOf512() {
        rejected(parser.parse(read(0, 500)), VIRTIO_BLK_S_IOERR);
        rejected(parser.parse(write(0, 512, 100)), VIRTIO_BLK_S_IOERR);
    }

    @Test
    void rejectsAReadOrWriteWithoutData() {
        rejected(parser.parse(read(0)), VIRTIO_BLK_S_IOERR);
        rejected(parser.parse(write(0)), VIRTIO_BLK_S_IOERR);
    }

    @Test
    void rejectsAReadWithDeviceReadableData() {
        DescriptorChain chain = bed.chain().out(bed.header(VIRTIO_BLK_T_IN, 0), 16).out(512).in(512).in(1).pop();
        rejected(parser.parse(chain), VIRTIO_BLK_S_IOERR);
    }

    @Test
    void rejectsAWriteWithDeviceWritableData() {
        DescriptorChain chain = bed.chain().out(bed.header(VIRTIO_BLK_T_OUT, 0), 16).out(512).in(512).in(1).pop();
        rejected(parser.parse(chain), VIRTIO_BLK_S_IOERR);
    }

    @Test
    void rejectsARangePastTheCapacity() {
        rejected(parser.parse(read(CAPACITY - 1, 1024)), VIRTIO_BLK_S_IOERR);
        rejected(parser.parse(write(CAPACITY, 512)), VIRTIO_BLK_S_IOERR);
    }

    @Test
    void rejectsASectorThatWouldOverflow() {
        rejected(parser.parse(read(-1L, 512)), VIRTIO_BLK_S_IOERR);
        rejected(parser.parse(read(Long.MAX_VALUE, 512)), VIRTIO_BLK_S_IOERR);
    }

    @Test
    void rejectsWritesDiscardsAndWriteZeroesOnAReadOnlyDevice() {
        BlkOptions ro = BlkOptions.builder(Path.of("/nonexistent/disk.img")).readOnly(true).build();
        // A read-only device does not offer DISCARD or WRITE_ZEROES; they are refused with IOERR all the same.
        BlkRequestParser p = new BlkRequestParser("ro.q0", CAPACITY, ro, VirtioFeatures.bit(BlkConfigLayout.VIRTIO_BLK_F_FLUSH));
        rejected(p.parse(write(0, 512)), VIRTIO_BLK_S_IOERR);
        rejected(p.parse(ranges(VIRTIO_BLK_T_DISCARD, 0, 8, 0)), VIRTIO_BLK_S_IOERR);
        rejected(p.parse(ranges(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0)), VIRTIO_BLK_S_IOERR);
        assertInstanceOf(BlkRequest.Read.class, p.parse(read(0, 512)), "reads still work");
    }

    @Test
    void rejectsMoreDataBuffersThanSegMax() {
        rejected(parser.parse(write(0, 512, 512, 512, 512, 512)), VIRTIO_BLK_S_IOERR);
        assertInstanceOf(BlkRequest.Write.class, parser.parse(write(0, 512, 512, 512, 512)));
    }

    @Test
    void rejectsADataBufferLargerThanSizeMax() {
        rejected(parser.parse(read(0, 8192)), VIRTIO_BLK_S_IOERR);
    }

    @Test
    void rejectsAFlushWithData() {
        DescriptorChain chain = bed.chain().out(bed.header(VIRTIO_BLK_T_FLUSH, 0), 16).out(512).in(1).pop();
        rejected(parser.parse(chain), VIRTIO_BLK_S_IOERR);
    }

    @Test
    void rejectsRequestsOfUnnegotiatedFeaturesAsUnsupported() {
        BlkRequestParser bare = new BlkRequestParser("bare.q0", CAPACITY, OPTIONS, 0);
        rejected(bare.parse(bed.chain().out(bed.header(VIRTIO_BLK_T_FLUSH, 0), 16).in(1).pop()), VIRTIO_BLK_S_UNSUPP);
        rejected(bare.parse(ranges(VIRTIO_BLK_T_DISCARD, 0, 8, 0)), VIRTIO_BLK_S_UNSUPP);
        rejected(bare.parse(ranges(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0)), VIRTIO_BLK_S_UNSUPP);
    }

    @Test
    void rejectsGetIdWithoutAnIdBuffer() {
        rejected(parser.parse(bed.chain().out(bed.header(VIRTIO_BLK_T_GET_ID, 0), 16).in(1).pop()), VIRTIO_BLK_S_IOERR);
        BlkRequest.GetId g = assertInstanceOf(BlkRequest.GetId.class,
                parser.parse(bed.chain().out(bed.header(VIRTIO_BLK_T_GET_ID, 0), 16).in(64).in(1).pop()));
        assertEquals(20, g.id().stream().mapToLong(s -> s.byteSize()).sum(), "at most 20 bytes of id");
    }

    @Test
    void shouldParseDiscardAndWriteZeroesSegments() {
        BlkRequest.Discard d = assertInstanceOf(BlkRequest.Discard.class, parser.parse(ranges(VIRTIO_BLK_T_DISCARD, 10, 100, 0, 900, 100, 0)));
        assertEquals(new BlkRequest.Range(900, 100, false), d.ranges().get(1));
        BlkRequest.WriteZeroes z = assertInstanceOf(BlkRequest.WriteZeroes.class,
                parser.parse(ranges(VIRTIO_BLK_T_WRITE_ZEROES, 0, 200, BlkRequestLayout.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)));
        assertTrue(z.ranges().getFirst().unmap());
    }

    @Test
    void rejectsSegmentDataThatIsNotAMultipleOf16() {
        DescriptorChain chain = bed.chain().out(bed.header(VIRTIO_BLK_T_DISCARD, 0), 16).out(bed.segments(0, 8, 0), 12).in(1).pop();
        rejected(parser.parse(chain), VIRTIO_BLK_S_IOERR);
        rejected(parser.parse(bed.chain().out(bed.header(VIRTIO_BLK_T_DISCARD, 0), 16).in(1).pop()), VIRTIO_BLK_S_IOERR);
    }

    @Test
    void rejectsMoreSegmentsThanTheLimit() {
        rejected(parser.parse(ranges(VIRTIO_BLK_T_DISCARD, 0, 1, 0, 1, 1, 0, 2, 1, 0)), VIRTIO_BLK_S_IOERR);
        rejected(parser.parse(ranges(VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0, 1, 1, 0, 2, 1, 0)), VIRTIO_BLK_S_IOERR);
    }

    @Test
    void rejectsReservedSegmentFlagsAsUnsupported() {
        rejected(parser.parse(ranges(VIRTIO_BLK_T_WRITE_ZEROES, 0, 8, 0x2)), VIRTIO_BLK_S_UNSUPP);
        rejected(parser.parse(ranges(VIRTIO_BLK_T_DISCARD, 0, 8, 0x8000_0000L)), VIRTIO_BLK_S_UNSUPP);
    }

    @Test
    void rejectsTheUnmapFlagOnADiscardAsUnsupported() {
        rejected(parser.parse(ranges(VIRTIO_BLK_T_DISCARD, 0, 8, BlkRequestLayout.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)), VIRTIO_BLK_S_UNSUPP);
    }

    @Test
    void rejectsASegmentLongerThanTheLimit() {
        rejected(parser.parse(ranges(VIRTIO_BLK_T_DISCARD, 0, 101, 0)), VIRTIO_BLK_S_IOERR);
        rejected(parser.parse(ranges(VIRTIO_BLK_T_WRITE_ZEROES, 0, 201, 0)), VIRTIO_BLK_S_IOERR);
    }

    @Test
    void rejectsASegmentPastTheCapacity() {
        rejected(parser.parse(ranges(VIRTIO_BLK_T_DISCARD, 950, 51, 0)), VIRTIO_BLK_S_IOERR);
        rejected(parser.parse(ranges(VIRTIO_BLK_T_WRITE_ZEROES, -1L, 1, 0)), VIRTIO_BLK_S_IOERR);
    }
}
