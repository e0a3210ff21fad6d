package dev.airlock.virtio;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * One buffer of a validated descriptor chain: a DMA address range the device's address space
 * translated, and the slice of the device's mapping that holds it. Devices touch guest memory only
 * through these.
 *
 * @param gpa         the address the descriptor gave (the driver's view of the shared region)
 * @param lengthBytes the length the descriptor gave, at least 1
 * @param segment     exactly those bytes in the device's mapping
 */
public record GuestRange(long gpa, long lengthBytes, MemorySegment segment) {
    /**
     * Checks that the slice has the stated length.
     *
     * @throws IllegalArgumentException if it does not, or the length is not positive
     */
    public GuestRange {
        Objects.requireNonNull(segment, "segment");
        if (lengthBytes <= 0 || segment.byteSize() != lengthBytes) {
            throw new IllegalArgumentException("guest range of " + lengthBytes + " bytes with a slice of " + segment.byteSize());
        }
    }
}
