package dev.airlock.devices.blk;

import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.GuestRange;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtioProtocolException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

import static dev.airlock.devices.blk.BlkRequestLayout.HEADER_LENGTH;
import static dev.airlock.devices.blk.BlkRequestLayout.SECTOR_SHIFT;
import static dev.airlock.devices.blk.BlkRequestLayout.SECTOR_SIZE;
import static dev.airlock.devices.blk.BlkRequestLayout.SEGMENT_LENGTH;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_S_IOERR;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_S_UNSUPP;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;

/**
 * Turns a {@link DescriptorChain} (already validated by the virtqueue: addresses, lengths, order of
 * readable and writable buffers) into a {@link BlkRequest} (VIRTIO 1.2 §5.2.6). Everything in the
 * chain was written by the guest and is hostile: the header and segments are copied out once and the
 * copies checked; every sector range is checked against the capacity with overflow-safe arithmetic.
 *
 * <p>The one unrecoverable case is a chain without a device-writable byte: the device has nowhere to
 * put a status, so the request cannot be answered; that is a protocol violation
 * ({@link VirtioProtocolException}), and the caller sets DEVICE_NEEDS_RESET. Anything else that is
 * wrong becomes a {@link BlkRequest.Rejected} with IOERR, or UNSUPP for an unknown or unnegotiated
 * type and for unknown segment flags (§5.2.6.2).
 *
 * <p>Not thread-safe: one parser per queue worker (it reuses a scratch buffer).
 */
public final class BlkRequestParser {
    private final String name;
    private final long capacitySectors;
    private final BlkOptions options;
    private final boolean flush;
    private final boolean discard;
    private final boolean writeZeroes;
    private final MemorySegment header = Arena.ofAuto().allocate(HEADER_LENGTH, 8);

    /**
     * Creates a parser for one device.
     *
     * @param name               for fault records, for example the queue's name
     * @param capacitySectors    the device's capacity
     * @param options            the device's limits (seg_max, size_max, discard and write-zeroes limits, read-only)
     * @param negotiatedFeatures the features in force
     */
    public BlkRequestParser(String name, long capacitySectors, BlkOptions options, long negotiatedFeatures) {
        this.name = Objects.requireNonNull(name, "name");
        if (capacitySectors < 0) {
            throw new IllegalArgumentException("negative capacity: " + capacitySectors);
        }
        this.capacitySectors = capacitySectors;
        this.options = Objects.requireNonNull(options, "options");
        this.flush = VirtioFeatures.has(negotiatedFeatures, BlkConfigLayout.VIRTIO_BLK_F_FLUSH);
        this.discard = VirtioFeatures.has(negotiatedFeatures, BlkConfigLayout.VIRTIO_BLK_F_DISCARD);
        this.writeZeroes = VirtioFeatures.has(negotiatedFeatures, BlkConfigLayout.VIRTIO_BLK_F_WRITE_ZEROES);
    }

    /**
     * Parses and checks one chain.
     *
     * @param chain a chain popped from a request queue
     * @return the request, possibly {@link BlkRequest.Rejected}
     * @throws VirtioProtocolException if the chain has no device-writable byte for the status
     */
    public BlkRequest parse(DescriptorChain chain) {
        if (chain.writableCount() == 0) {
            throw new VirtioProtocolException(new VirtioFault(name, "chain[" + chain.head() + "].status", chain.writableBytes(),
                    "request has no device-writable byte for its status (§5.2.6)"));
        }
        GuestRange last = chain.writable(chain.writableCount() - 1);
        MemorySegment status = last.segment().asSlice(last.lengthBytes() - 1, 1);
        if (chain.readableBytes() < HEADER_LENGTH) {
            return new BlkRequest.Rejected(-1, VIRTIO_BLK_S_IOERR, "header of " + chain.readableBytes() + " bytes, not 16", status);
        }
        chain.readFrom(0, header);
        int type = BlkRequestLayout.type(header);
        long sector = BlkRequestLayout.sector(header);
        long readableData = chain.readableBytes() - HEADER_LENGTH;
        long writableData = chain.writableBytes() - 1;
        return switch (type) {
            case BlkRequestLayout.VIRTIO_BLK_T_IN -> read(chain, sector, readableData, writableData, status);
            case BlkRequestLayout.VIRTIO_BLK_T_OUT -> write(chain, sector, readableData, writableData, status);
            case BlkRequestLayout.VIRTIO_BLK_T_FLUSH -> !flush ? unsupported(type, "FLUSH not negotiated", status)
                    : readableData != 0 || writableData != 0
                    ? ioerr(type, "FLUSH with " + readableData + " + " + writableData + " data bytes", status)
                    : new BlkRequest.Flush(status);
            case BlkRequestLayout.VIRTIO_BLK_T_GET_ID -> readableData != 0 || writableData == 0
                    ? ioerr(type, "GET_ID needs a device-writable id buffer and no device-readable data", status)
                    : new BlkRequest.GetId(slices(chain, true, 0, Math.min(writableData, BlkRequestLayout.VIRTIO_BLK_ID_BYTES)), status);
            case BlkRequestLayout.VIRTIO_BLK_T_DISCARD -> options.readOnly() ? ioerr(type, "discard on a read-only device", status)
                    : !discard ? unsupported(type, "DISCARD not negotiated", status)
                    : ranges(chain, type, readableData, writableData, options.maxDiscardSeg(), options.maxDiscardSectors(), status);
            case BlkRequestLayout.VIRTIO_BLK_T_WRITE_ZEROES -> options.readOnly() ? ioerr(type, "write-zeroes on a read-only device", status)
                    : !writeZeroes ? unsupported(type, "WRITE_ZEROES not negotiated", status)
                    : ranges(chain, type, readableData, writableData, options.maxWriteZeroesSeg(), options.maxWriteZeroesSectors(), status);
            default -> unsupported(type, "unknown request type " + Integer.toUnsignedString(type), status);
        };
    }

    private BlkRequest read(DescriptorChain chain, long sector, long readableData, long writableData, MemorySegment status) {
        int type = BlkRequestLayout.VIRTIO_BLK_T_IN;
        if (readableData != 0) {
            return ioerr(type, "IN with " + readableData + " device-readable data bytes", status);
        }
        String bad = checkData(sector, writableData);
        if (bad != null) {
            return ioerr(type, bad, status);
        }
        List<MemorySegment> data = slices(chain, true, 0, writableData);
        bad = checkSegments(data);
        return bad != null ? ioerr(type, bad, status) : new BlkRequest.Read(sector, data, writableData, status);
    }

    private BlkRequest write(DescriptorChain chain, long sector, long readableData, long writableData, MemorySegment status) {
        int type = BlkRequestLayout.VIRTIO_BLK_T_OUT;
        if (options.readOnly()) {
            return ioerr(type, "write to a read-only device", status);
        }
        if (writableData != 0) {
            return ioerr(type, "OUT with " + writableData + " device-writable data bytes", status);
        }
        String bad = checkData(sector, readableData);
        if (bad != null) {
            return ioerr(type, bad, status);
        }
        List<MemorySegment> data = slices(chain, false, HEADER_LENGTH, readableData);
        bad = checkSegments(data);
        return bad != null ? ioerr(type, bad, status) : new BlkRequest.Write(sector, data, readableData, status);
    }

    /** Checks the data length and the sector range of a read or write; returns why not, or null. */
    private String checkData(long sector, long dataBytes) {
        if (dataBytes == 0 || (dataBytes & (SECTOR_SIZE - 1)) != 0) {
            return "data of " + dataBytes + " bytes is not a non-zero multiple of 512";
        }
        return checkRange(sector, dataBytes >>> SECTOR_SHIFT);
    }

    /** Checks {@code [sector, sector + sectors)} against the capacity, overflow-safe; returns why not, or null. */
    private String checkRange(long sector, long sectors) {
        // sector is an unsigned 64-bit value from the guest: a "negative" one is far past the end.
        if (Long.compareUnsigned(sector, capacitySectors) > 0 || sectors > capacitySectors - sector) {
            return "sectors " + Long.toUnsignedString(sector) + " + " + sectors + " pass the capacity " + capacitySectors;
        }
        return null;
    }

    /** Checks the data buffers against seg_max and size_max; returns why not, or null. */
    private String checkSegments(List<MemorySegment> data) {
        if (data.size() > options.segMax()) {
            return data.size() + " data buffers, more than seg_max " + options.segMax();
        }
        for (MemorySegment s : data) {
            if (s.byteSize() > options.sizeMax()) {
                return "data buffer of " + s.byteSize() + " bytes, more than size_max " + options.sizeMax();
            }
        }
        return null;
    }

    private BlkRequest ranges(DescriptorChain chain, int type, long readableData, long writableData, long maxSeg,
                              long maxSectors, MemorySegment status) {
        if (writableData != 0) {
            return ioerr(type, writableData + " device-writable data bytes", status);
        }
        if (readableData == 0 || readableData % SEGMENT_LENGTH != 0) {
            return ioerr(type, "segment data of " + readableData + " bytes is not a non-zero multiple of 16", status);
        }
        long count = readableData / SEGMENT_LENGTH;
        if (count > maxSeg) {
            return ioerr(type, count + " segments, more than the limit " + maxSeg, status);
        }
        // count <= maxSeg <= 65536 (BlkOptions), so the copy is at most 1 MiB.
        MemorySegment copy = MemorySegment.ofArray(new byte[(int) readableData]);
        chain.readFrom(HEADER_LENGTH, copy);
        List<BlkRequest.Range> ranges = new ArrayList<>((int) count);
        for (long i = 0; i < count; i++) {
            long base = i * SEGMENT_LENGTH;
            long sector = BlkRequestLayout.segmentSector(copy, base);
            long sectors = BlkRequestLayout.segmentNumSectors(copy, base);
            int flags = BlkRequestLayout.segmentFlags(copy, base);
            boolean unmap = (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0;
            if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0) {
                return unsupported(type, "segment " + i + ": reserved flag bits 0x" + Integer.toHexString(flags), status);
            }
            if (unmap && type == BlkRequestLayout.VIRTIO_BLK_T_DISCARD) {
                return unsupported(type, "segment " + i + ": unmap flag on a discard", status);
            }
            if (sectors > maxSectors) {
                return ioerr(type, "segment " + i + ": " + sectors + " sectors, more than the limit " + maxSectors, status);
            }
            String bad = checkRange(sector, sectors);
            if (bad != null) {
                return ioerr(type, "segment " + i + ": " + bad, status);
            }
            ranges.add(new BlkRequest.Range(sector, sectors, unmap));
        }
        return type == BlkRequestLayout.VIRTIO_BLK_T_DISCARD ? new BlkRequest.Discard(ranges, status)
                : new BlkRequest.WriteZeroes(ranges, status);
    }

    /**
     * Whether a write-zeroes with the unmap flag may deallocate (write_zeroes_may_unmap).
     *
     * @return the option
     */
    boolean writeZeroesMayUnmap() {
        return options.writeZeroesMayUnmap();
    }

    /** Slices of the readable or writable stream {@code [start, start + length)}, in order. */
    private static List<MemorySegment> slices(DescriptorChain chain, boolean writable, long start, long length) {
        List<MemorySegment> out = new ArrayList<>();
        int count = writable ? chain.writableCount() : chain.readableCount();
        long skip = start;
        long remaining = length;
        for (int i = 0; i < count && remaining > 0; i++) {
            GuestRange r = writable ? chain.writable(i) : chain.readable(i);
            if (skip >= r.lengthBytes()) {
                skip -= r.lengthBytes();
                continue;
            }
            long n = Math.min(r.lengthBytes() - skip, remaining);
            out.add(r.segment().asSlice(skip, n));
            remaining -= n;
            skip = 0;
        }
        return out;
    }

    private static BlkRequest ioerr(int type, String reason, MemorySegment status) {
        return new BlkRequest.Rejected(type, VIRTIO_BLK_S_IOERR, reason, status);
    }

    private static BlkRequest unsupported(int type, String reason, MemorySegment status) {
        return new BlkRequest.Rejected(type, VIRTIO_BLK_S_UNSUPP, reason, status);
    }
}
