package dev.airlock.memory;

import dev.airlock.memory.sys.Linux;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A VM's private RAM: an anonymous {@code MAP_PRIVATE} mapping that is never backed by a file and
 * so can never be handed to another process. Pages are zero and committed on first touch.
 */
public final class PrivateMemory implements AutoCloseable {
    private final String name;
    private final Arena arena;
    private final MemorySegment segment;

    /**
     * Maps {@code sizeBytes} of anonymous private memory.
     *
     * @param name      a name for messages
     * @param sizeBytes a positive multiple of 4096
     */
    public PrivateMemory(String name, long sizeBytes) {
        if (sizeBytes <= 0 || (sizeBytes & 4095) != 0) {
            throw new IllegalArgumentException("private memory size must be a positive multiple of 4096: " + sizeBytes);
        }
        this.name = name;
        this.arena = Arena.ofShared();
        try {
            this.segment = Linux.mmap(sizeBytes, Linux.PROT_READ | Linux.PROT_WRITE,
                    Linux.MAP_PRIVATE | Linux.MAP_ANONYMOUS | Linux.MAP_NORESERVE, -1, 0, arena);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * The mapped bytes; valid until {@link #close()}.
     *
     * @return the segment
     */
    public MemorySegment segment() {
        return segment;
    }

    /**
     * A region of an address space over this memory.
     *
     * @param gpaBase where the region starts
     * @return a {@link RegionKind#PRIVATE} region
     */
    public MemoryRegion region(long gpaBase) {
        return new MemoryRegion(name, RegionKind.PRIVATE, gpaBase, segment);
    }

    /** Unmaps the memory. */
    @Override
    public void close() {
        arena.close();
    }
}
