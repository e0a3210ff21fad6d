package dev.airlock.dma;

import java.lang.foreign.MemorySegment;

/**
 * A buffer that both the driver and the device see without copies (a vring, for example): the
 * device reaches it at {@code dmaAddr}, the driver writes it through {@code segment}.
 *
 * @param dmaAddr the address the device uses, the one written into queue set-up registers
 * @param segment the driver's (CPU's) view of the same bytes
 */
public record CoherentBuffer(long dmaAddr, MemorySegment segment) {
    /**
     * The size of the buffer.
     *
     * @return its length in bytes
     */
    public long sizeBytes() {
        return segment.byteSize();
    }
}
