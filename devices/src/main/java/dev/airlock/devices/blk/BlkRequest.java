package dev.airlock.devices.blk;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Objects;

/**
 * A virtio-blk request the {@link BlkRequestParser} checked in full: every length, sector range,
 * segment and flag is valid for the device and the negotiated features, so a device may act on it
 * without further checks. Data is given as slices of the chain's buffers in the device's mapping of
 * the shared region (no copy); the header and segments were copied out once.
 *
 * <p>Each request carries {@code status}, the one device-writable byte at the end of the chain.
 */
public sealed interface BlkRequest {
    /**
     * The status byte of the request in the shared region.
     *
     * @return a 1-byte slice
     */
    MemorySegment status();

    /**
     * A read (VIRTIO_BLK_T_IN): fill {@code data} from the image at {@code sector}.
     *
     * @param sector     the first sector
     * @param data       the device-writable data buffers, in order
     * @param dataBytes  their total length, a non-zero multiple of 512
     * @param status     the status byte
     */
    record Read(long sector, List<MemorySegment> data, long dataBytes, MemorySegment status) implements BlkRequest {
        /** Copies the list. */
        public Read {
            data = List.copyOf(data);
            Objects.requireNonNull(status, "status");
        }
    }

    /**
     * A write (VIRTIO_BLK_T_OUT): store {@code data} in the image at {@code sector}.
     *
     * @param sector    the first sector
     * @param data      the device-readable data buffers, in order
     * @param dataBytes their total length, a non-zero multiple of 512
     * @param status    the status byte
     */
    record Write(long sector, List<MemorySegment> data, long dataBytes, MemorySegment status) implements BlkRequest {
        /** Copies the list. */
        public Write {
            data = List.copyOf(data);
            Objects.requireNonNull(status, "status");
        }
    }

    /**
     * A flush (VIRTIO_BLK_T_FLUSH): make every completed write durable.
     *
     * @param status the status byte
     */
    record Flush(MemorySegment status) implements BlkRequest {
    }

    /**
     * GET_ID: write the serial into {@code id} (at most its length, at most 20 bytes).
     *
     * @param id     the device-writable bytes before the status
     * @param status the status byte
     */
    record GetId(List<MemorySegment> id, MemorySegment status) implements BlkRequest {
        /** Copies the list. */
        public GetId {
            id = List.copyOf(id);
        }
    }

    /**
     * One range of a discard or write-zeroes request, checked against the capacity and limits.
     *
     * @param sector     the first sector
     * @param numSectors how many, may be 0
     * @param unmap      the unmap flag (write-zeroes only; a discard with it is refused)
     */
    record Range(long sector, long numSectors, boolean unmap) {
    }

    /**
     * A discard (VIRTIO_BLK_T_DISCARD): the ranges may be deallocated.
     *
     * @param ranges the ranges, at least one
     * @param status the status byte
     */
    record Discard(List<Range> ranges, MemorySegment status) implements BlkRequest {
        /** Copies the list. */
        public Discard {
            ranges = List.copyOf(ranges);
        }
    }

    /**
     * A write-zeroes (VIRTIO_BLK_T_WRITE_ZEROES): the ranges must read back as zeros.
     *
     * @param ranges the ranges, at least one
     * @param status the status byte
     */
    record WriteZeroes(List<Range> ranges, MemorySegment status) implements BlkRequest {
        /** Copies the list. */
        public WriteZeroes {
            ranges = List.copyOf(ranges);
        }
    }

    /**
     * A request the device refuses without touching the image: malformed (IOERR), of an unknown or
     * unnegotiated type or with unknown flags (UNSUPP), or a write to a read-only device (IOERR).
     *
     * @param type       the type the header gave, or -1 if the header was short
     * @param statusCode {@link BlkRequestLayout#VIRTIO_BLK_S_IOERR} or {@link BlkRequestLayout#VIRTIO_BLK_S_UNSUPP}
     * @param reason     why, for the rate-limited log and tests
     * @param status     the status byte
     */
    record Rejected(int type, int statusCode, String reason, MemorySegment status) implements BlkRequest {
    }
}
