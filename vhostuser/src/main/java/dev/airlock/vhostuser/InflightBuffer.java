package dev.airlock.vhostuser;

import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.NativeCallException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The inflight buffer the front-end handed over with SET_INFLIGHT_FD: one
 * {@link InflightQueueRegionLayout} region per queue, mapped {@code MAP_SHARED}.
 */
final class InflightBuffer implements AutoCloseable {
    private final Arena arena;
    private final MemorySegment mapping;
    private final int queueCount;
    private final int queueSize;

    private InflightBuffer(Arena arena, MemorySegment mapping, int queueCount, int queueSize) {
        this.arena = arena;
        this.mapping = mapping;
        this.queueCount = queueCount;
        this.queueSize = queueSize;
    }

    /** The buffer size for these counts. */
    static long lengthBytes(int queueCount, int queueSize) {
        return queueCount * InflightQueueRegionLayout.regionLength(queueSize);
    }

    /** Creates a zeroed buffer (GET_INFLIGHT_FD) and returns its memfd; the caller sends and closes it. */
    static int create(long lengthBytes) {
        return Linux.memfdCreate("airlock-vhost-inflight", lengthBytes, Linux.MFD_CLOEXEC);
    }

    /**
     * Maps the buffer the front-end sent (SET_INFLIGHT_FD); closes {@code fd} in every case.
     *
     * @param maxQueues the model's queue count
     * @param maxSize   the largest queue size the model allows on any queue
     */
    static InflightBuffer map(int fd, long mmapSize, long mmapOffset, int queueCount, int queueSize, int maxQueues, int maxSize) {
        try {
            String name = VhostUserRequest.name(VhostUserRequest.SET_INFLIGHT_FD);
            if (queueCount < 1 || queueCount > maxQueues) {
                throw new VhostUserProtocolException(name + ".num_queues", queueCount, "not 1 to " + maxQueues);
            }
            if (queueSize < 1 || queueSize > maxSize) {
                throw new VhostUserProtocolException(name + ".queue_size", queueSize, "not 1 to " + maxSize);
            }
            if (mmapSize != lengthBytes(queueCount, queueSize)) {
                throw new VhostUserProtocolException(name + ".mmap_size", mmapSize, "must be " + lengthBytes(queueCount, queueSize)
                        + " for " + queueCount + " queues of " + queueSize);
            }
            if (mmapOffset < 0 || (mmapOffset & 4095) != 0 || Long.compareUnsigned(mmapOffset + mmapSize, Linux.fileSize(fd)) > 0) {
                throw new VhostUserProtocolException(name + ".mmap_offset", mmapOffset, "not page aligned or past the end of the file");
            }
            Arena arena = Arena.ofShared();
            try {
                MemorySegment mapping = Linux.mmap(mmapSize, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED, fd, mmapOffset, arena);
                return new InflightBuffer(arena, mapping, queueCount, queueSize);
            } catch (NativeCallException e) {
                arena.close();
                throw new VhostUserProtocolException(name + ".fds", fd, "cannot be mapped: " + e.getMessage());
            }
        } finally {
            Linux.close(fd);
        }
    }

    /** The tracker of queue {@code queue}, or null if the buffer has no region for it. */
    InflightQueue queue(int queue, String field) {
        if (queue >= queueCount) {
            return null;
        }
        long length = InflightQueueRegionLayout.regionLength(queueSize);
        return new InflightQueue(field, mapping.asSlice(queue * length, length), queueSize);
    }

    @Override
    public void close() {
        arena.close();
    }
}
