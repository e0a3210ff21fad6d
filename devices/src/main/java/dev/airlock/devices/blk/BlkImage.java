package dev.airlock.devices.blk;

import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.NativeCallException;

import java.io.EOFException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

/**
 * A raw image file as a block device sees it: positional reads and writes through a
 * {@link FileChannel} straight between the file and slices of the shared region (no copy in Java),
 * {@code force(true)} for flushes, and {@code fallocate} through a second descriptor for discard and
 * write-zeroes. Thread-safe: positional I/O does not move a shared file position.
 *
 * <p><b>Locking.</b> The image is locked with {@code flock} on the raw descriptor: exclusive to
 * serve it read-write, shared to serve it read-only, never waiting. {@link FileChannel#tryLock} is not
 * used: its {@code fcntl} record locks belong to the process, so closing any descriptor of the file
 * (a second backend that found the lock taken, or the {@code fallocate} descriptor) would silently
 * drop the first backend's lock; an {@code flock} lock belongs to its open file and holds until that
 * is closed, and conflicts within one process as well as across processes.
 */
final class BlkImage implements AutoCloseable {
    private static final int ZERO_CHUNK_BYTES = 1 << 20;
    private static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(ZERO_CHUNK_BYTES).asReadOnlyBuffer();

    private final Path path;
    private final boolean readOnly;
    private final FileChannel channel;
    private final int fd;
    private final long sizeBytes;
    private volatile boolean zeroRangeUnsupported;

    private BlkImage(Path path, boolean readOnly, FileChannel channel, int fd, long sizeBytes) {
        this.path = path;
        this.readOnly = readOnly;
        this.channel = channel;
        this.fd = fd;
        this.sizeBytes = sizeBytes;
    }

    /**
     * Opens and locks an image.
     *
     * @param path     the file
     * @param readOnly whether to open it read-only (with a shared lock)
     * @return the image
     * @throws BlkImageLockedException if another backend holds a conflicting lock
     * @throws IOException             if the file cannot be opened
     */
    static BlkImage open(Path path, boolean readOnly) throws IOException {
        int fd;
        try {
            fd = Linux.open(path.toString(), (readOnly ? Linux.O_RDONLY : Linux.O_RDWR) | Linux.O_CLOEXEC);
        } catch (NativeCallException e) {
            throw new IOException("cannot open image " + path + ": " + e.getMessage(), e);
        }
        try {
            if (!Linux.flock(fd, (readOnly ? Linux.LOCK_SH : Linux.LOCK_EX) | Linux.LOCK_NB)) {
                throw new BlkImageLockedException(path, readOnly);
            }
            FileChannel channel = readOnly ? FileChannel.open(path, StandardOpenOption.READ)
                    : FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            return new BlkImage(path, readOnly, channel, fd, channel.size());
        } catch (IOException | RuntimeException e) {
            Linux.close(fd);
            throw e;
        }
    }

    Path path() {
        return path;
    }

    long sizeBytes() {
        return sizeBytes;
    }

    /** Reads {@code data.size()} buffers from {@code offset} on, in order. */
    void read(long offset, List<MemorySegment> data) throws IOException {
        long position = offset;
        for (MemorySegment s : data) {
            ByteBuffer b = s.asByteBuffer();
            while (b.hasRemaining()) {
                if (channel.read(b, position + b.position()) < 0) {
                    throw new EOFException("image " + path + " ends before byte " + (position + b.position()));
                }
            }
            position += s.byteSize();
        }
    }

    /** Writes the buffers from {@code offset} on, in order. */
    void write(long offset, List<MemorySegment> data) throws IOException {
        checkWritable();
        long position = offset;
        for (MemorySegment s : data) {
            ByteBuffer b = s.asByteBuffer();
            while (b.hasRemaining()) {
                channel.write(b, position + b.position());
            }
            position += s.byteSize();
        }
    }

    /** Makes every completed write durable (data and metadata). */
    void flush() throws IOException {
        channel.force(true);
    }

    /** Deallocates a range; it reads back as zeros. A file system without hole punching ignores it. */
    void discard(long offset, long lengthBytes) throws IOException {
        checkWritable();
        if (lengthBytes == 0) {
            return;
        }
        try {
            Linux.fallocate(fd, Linux.FALLOC_FL_PUNCH_HOLE | Linux.FALLOC_FL_KEEP_SIZE, offset, lengthBytes);
        } catch (NativeCallException e) {
            if (e.errno() != Linux.EOPNOTSUPP) {
                throw new IOException("discard on image " + path + ": " + e.getMessage(), e);
            }
            // Discard is a hint (§5.2.6.2: the device MAY deallocate); nothing to do.
        }
    }

    /**
     * Makes a range read back as zeros: punches a hole if {@code unmap}, else zeroes it in place
     * ({@code FALLOC_FL_ZERO_RANGE}), falling back to writing zeros where the file system lacks it.
     */
    void writeZeroes(long offset, long lengthBytes, boolean unmap) throws IOException {
        checkWritable();
        if (lengthBytes == 0) {
            return;
        }
        int mode = (unmap ? Linux.FALLOC_FL_PUNCH_HOLE : Linux.FALLOC_FL_ZERO_RANGE) | Linux.FALLOC_FL_KEEP_SIZE;
        if (unmap || !zeroRangeUnsupported) {
            try {
                Linux.fallocate(fd, mode, offset, lengthBytes);
                return;
            } catch (NativeCallException e) {
                if (e.errno() != Linux.EOPNOTSUPP) {
                    throw new IOException("write-zeroes on image " + path + ": " + e.getMessage(), e);
                }
                if (!unmap) {
                    zeroRangeUnsupported = true;
                }
            }
        }
        writeZeroBytes(offset, lengthBytes);
    }

    private void writeZeroBytes(long offset, long lengthBytes) throws IOException {
        long done = 0;
        while (done < lengthBytes) {
            ByteBuffer b = ZEROS.duplicate();
            b.limit((int) Math.min(ZERO_CHUNK_BYTES, lengthBytes - done));
            while (b.hasRemaining()) {
                channel.write(b, offset + done + b.position());
            }
            done += b.limit();
        }
    }

    private void checkWritable() throws IOException {
        if (readOnly) {
            throw new IOException("image " + path + " is open read-only");
        }
    }

    /** Closes the channel and the descriptor (which releases the lock). */
    @Override
    public void close() throws IOException {
        try {
            channel.close();
        } finally {
            Linux.close(fd);
        }
    }
}
