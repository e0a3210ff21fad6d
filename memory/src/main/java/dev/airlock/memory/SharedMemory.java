package dev.airlock.memory;

import dev.airlock.memory.sys.Linux;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Memory that can be shared with another process: a memfd mapped {@code MAP_SHARED}. The same fd
 * can be mapped again ({@link #map}) in this or another process (after passing it with
 * {@code SCM_RIGHTS}); every mapping sees the same bytes at its own virtual address.
 *
 * <p>Closing unmaps this mapping and closes the fd if this object owns it.
 */
public final class SharedMemory implements AutoCloseable {
    private final String name;
    private final int fd;
    private final boolean ownsFd;
    private final Arena arena;
    private final MemorySegment segment;

    private SharedMemory(String name, int fd, boolean ownsFd, long sizeBytes) {
        this.name = name;
        this.fd = fd;
        this.ownsFd = ownsFd;
        this.arena = Arena.ofShared();
        try {
            this.segment = Linux.mmap(sizeBytes, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED, fd, 0, arena);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /**
     * Creates a new zero-filled memfd of the given size and maps it.
     *
     * @param name      the memfd name (visible in {@code /proc/PID/maps} as {@code /memfd:NAME})
     * @param sizeBytes the size, a positive multiple of 4096
     * @return the mapping, owning the fd
     */
    public static SharedMemory create(String name, long sizeBytes) {
        checkSize(sizeBytes);
        int fd = Linux.memfdCreate(name, sizeBytes, Linux.MFD_CLOEXEC);
        try {
            return new SharedMemory(name, fd, true, sizeBytes);
        } catch (RuntimeException e) {
            Linux.close(fd);
            throw e;
        }
    }

    /**
     * Maps an existing memfd (one received from another process, or another mapping of one this
     * process created). The caller keeps ownership of {@code fd} unless {@code takeFd} is set.
     *
     * @param name      a name for messages
     * @param fd        the memfd
     * @param sizeBytes how much to map, a positive multiple of 4096 no larger than the file
     * @param takeFd    whether closing this mapping closes the fd
     * @return the mapping
     */
    public static SharedMemory map(String name, int fd, long sizeBytes, boolean takeFd) {
        checkSize(sizeBytes);
        long fileSize = Linux.fileSize(fd);
        if (Long.compareUnsigned(sizeBytes, fileSize) > 0) {
            throw new IllegalArgumentException("cannot map " + sizeBytes + " bytes of '" + name + "': the file has " + fileSize);
        }
        return new SharedMemory(name, fd, takeFd, sizeBytes);
    }

    private static void checkSize(long sizeBytes) {
        if (sizeBytes <= 0 || (sizeBytes & 4095) != 0) {
            throw new IllegalArgumentException("shared memory size must be a positive multiple of 4096: " + sizeBytes);
        }
    }

    /**
     * The name given at creation.
     *
     * @return the name
     */
    public String name() {
        return name;
    }

    /**
     * The memfd behind the mapping.
     *
     * @return the file descriptor
     */
    public int fd() {
        return fd;
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
     * @param gpaBase where the region starts in that address space
     * @return a {@link RegionKind#SHARED} region named after this memory
     */
    public MemoryRegion region(long gpaBase) {
        return new MemoryRegion(name, RegionKind.SHARED, gpaBase, segment);
    }

    /** Unmaps the memory and, if owned, closes the fd. */
    @Override
    public void close() {
        arena.close();
        if (ownsFd) {
            Linux.close(fd);
        }
    }
}
