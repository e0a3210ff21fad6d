package dev.airlock.devices.blk;

import dev.airlock.dma.CoherentBuffer;
import dev.airlock.dma.DmaMappingException;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.RegionKind;
import dev.airlock.memory.UnmappedAddressException;
import dev.airlock.transport.TransportException;
import dev.airlock.transport.VirtioFrontend;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;

import static dev.airlock.devices.blk.BlkRequestLayout.SECTOR_SHIFT;
import static dev.airlock.devices.blk.BlkRequestLayout.SECTOR_SIZE;

/**
 * The virtio-blk driver for an application in a secondary VM, over a {@link VirtioFrontend}.
 *
 * <p><b>Buffers.</b> The guest-RAM methods take buffers in the VM's private RAM by guest-physical
 * address; the frontend's bounce DMA ops copy them through the pool in the shared region. The
 * {@code byte[]} and {@link MemorySegment} methods copy through a staging area, the I/O area
 * ({@link BlockDeviceOptions}), so any Java memory works. Each request's header and status live in
 * a control slot in the shared region (a coherent buffer of the frontend's pool, 64 bytes per
 * request of the queue depth), so only data is bounced.
 *
 * <p><b>Requests.</b> Offsets and lengths are in 512-byte sectors or multiples of 512 bytes. A call
 * larger than one virtio request is split (by size_max, seg_max, the bounce pool's largest mapping
 * and {@link BlockDeviceOptions#maxRequestBytes()}); its future completes when every part has. At
 * most {@link BlockDeviceOptions#queueDepth()} requests are in the virtqueues; more wait in Java and
 * never fail for lack of room. The device checks sector ranges and read-only refusal: such a request
 * fails with {@link BlkIoException}; one the device does not support with
 * {@link BlkUnsupportedException}.
 *
 * <p><b>Failure.</b> If the device sets DEVICE_NEEDS_RESET, a queue breaks, or the transport breaks,
 * the {@link BlockDeviceOptions.FailurePolicy} decides: RECOVER (the default) resets the device,
 * re-initialises it and resubmits what was in flight, in order (reads and writes are idempotent);
 * HOLD keeps everything until {@link #recover()}; FAIL fails everything with
 * {@link BlkDeviceFailedException}. Nothing pends forever: {@link #close()} fails what is left.
 *
 * <p><b>Threads.</b> Every method may be called from any thread. A private driver thread owns the
 * virtqueues; futures complete on it, so dependent stages added with the non-async methods run there
 * and must not block.
 */
public final class BlockDevice implements AutoCloseable {
    private final VirtioFrontend frontend;
    private final BlkDriverLoop loop;
    private final MemorySegment staging;
    private final long stagingGpa;
    private final long chunkBytes;
    private final BlockingQueue<Long> freeChunks;

    private BlockDevice(VirtioFrontend frontend, BlockDeviceOptions options, MemorySegment ioArea, CoherentBuffer control) {
        this.frontend = frontend;
        this.loop = new BlkDriverLoop(frontend.transport().name(), frontend, options, control);
        this.staging = ioArea;
        this.stagingGpa = options.ioAreaGpa();
        long stagingBytes = options.stagingBytes();
        long chunk = Math.min(options.maxRequestBytes(), Math.max(BlockDeviceOptions.MIN_STAGING_BYTES, stagingBytes / 4));
        this.chunkBytes = chunk & -(long) SECTOR_SIZE;
        int chunks = (int) Math.min(1024, stagingBytes / chunkBytes);
        this.freeChunks = new ArrayBlockingQueue<>(chunks);
        for (int i = 0; i < chunks; i++) {
            freeChunks.add(i * chunkBytes);
        }
    }

    /**
     * Initialises the device and starts the driver thread.
     *
     * @param frontend    the device's frontend, not yet initialised; the block device sets its listener
     * @param driverSpace the VM's address space (the I/O area must lie in one private region of it)
     * @param options     the I/O area and limits
     * @return the block device
     * @throws BlkDeviceFailedException if the device is missing, not a block device, refuses the
     *                                  features or queues, or does not answer
     * @throws IllegalArgumentException if the I/O area is not private RAM of {@code driverSpace}
     */
    public static BlockDevice open(VirtioFrontend frontend, GuestAddressSpace driverSpace, BlockDeviceOptions options)
            throws BlkDeviceFailedException {
        Objects.requireNonNull(frontend, "frontend");
        Objects.requireNonNull(options, "options");
        MemorySegment ioArea;
        try {
            ioArea = driverSpace.translate(options.ioAreaGpa(), options.ioAreaBytes(), RegionKind.PRIVATE);
        } catch (UnmappedAddressException e) {
            throw new IllegalArgumentException("the I/O area must be private RAM of the driver: " + e.getMessage(), e);
        }
        long controlBytes = (long) options.queueDepth() * BlockDeviceOptions.CONTROL_SLOT_BYTES;
        CoherentBuffer control;
        try {
            control = frontend.dma().allocCoherent(controlBytes, BlockDeviceOptions.CONTROL_SLOT_BYTES);
        } catch (DmaMappingException e) {
            throw new BlkDeviceFailedException("no room in the bounce pool of " + frontend.transport().name() + " for "
                    + controlBytes + " bytes of control slots (queue depth " + options.queueDepth() + "): " + e.getMessage(), e);
        }
        BlockDevice device = new BlockDevice(frontend, options, ioArea, control);
        try {
            device.loop.initialize();
        } catch (TransportException e) {
            throw new BlkDeviceFailedException("cannot initialise block device " + frontend.transport().name() + ": " + e.getMessage(), e);
        }
        device.loop.start();
        return device;
    }

    /**
     * What the device offered and the driver accepted; refreshed by recovery.
     *
     * @return the info
     */
    public BlockDeviceInfo info() {
        return loop.info();
    }

    /**
     * The capacity in 512-byte sectors.
     *
     * @return sectors
     */
    public long capacitySectors() {
        return loop.info().capacitySectors();
    }

    /**
     * Whether the device is read-only (RO negotiated).
     *
     * @return whether writes will be refused
     */
    public boolean isReadOnly() {
        return loop.info().readOnly();
    }

    /**
     * Reads {@code lengthBytes} from {@code sector} into private RAM at {@code gpa}.
     *
     * @param sector      the first sector
     * @param gpa         the destination in the driver's private RAM
     * @param lengthBytes a positive multiple of 512
     * @return completes when the data is in place
     */
    public CompletableFuture<Void> readAsync(long sector, long gpa, long lengthBytes) {
        return data(BlkRequestLayout.VIRTIO_BLK_T_IN, sector, gpa, lengthBytes);
    }

    /**
     * Writes {@code lengthBytes} from private RAM at {@code gpa} to {@code sector}. Durable only after
     * a later {@link #flushAsync()} completes.
     *
     * @param sector      the first sector
     * @param gpa         the source in the driver's private RAM
     * @param lengthBytes a positive multiple of 512
     * @return completes when the device has the data
     */
    public CompletableFuture<Void> writeAsync(long sector, long gpa, long lengthBytes) {
        return data(BlkRequestLayout.VIRTIO_BLK_T_OUT, sector, gpa, lengthBytes);
    }

    /**
     * Makes every write completed before this call durable (FLUSH). Without the FLUSH feature the
     * device has no volatile cache to flush, so this completes at once.
     *
     * @return completes when the writes are durable
     */
    public CompletableFuture<Void> flushAsync() {
        if (!loop.info().has(BlkConfigLayout.VIRTIO_BLK_F_FLUSH)) {
            return CompletableFuture.completedFuture(null);
        }
        return loop.submit(BlkDriverRequest.control(BlkRequestLayout.VIRTIO_BLK_T_FLUSH));
    }

    /**
     * Discards sectors (they may be deallocated; what they read back as is up to the device).
     *
     * @param sector  the first sector
     * @param sectors how many, at least 1
     * @return completes when done; fails with {@link BlkUnsupportedException} without DISCARD
     */
    public CompletableFuture<Void> discardAsync(long sector, long sectors) {
        return ranges(BlkRequestLayout.VIRTIO_BLK_T_DISCARD, sector, sectors, loop.info().maxDiscardSectors(), 0);
    }

    /**
     * Makes sectors read back as zeros.
     *
     * @param sector  the first sector
     * @param sectors how many, at least 1
     * @param unmap   whether the device may deallocate them
     * @return completes when done; fails with {@link BlkUnsupportedException} without WRITE_ZEROES
     */
    public CompletableFuture<Void> writeZeroesAsync(long sector, long sectors, boolean unmap) {
        return ranges(BlkRequestLayout.VIRTIO_BLK_T_WRITE_ZEROES, sector, sectors, loop.info().maxWriteZeroesSectors(),
                unmap ? BlkRequestLayout.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0);
    }

    /**
     * Asks for the device's id string (GET_ID).
     *
     * @return the id, up to 20 ASCII characters
     */
    public CompletableFuture<String> serialAsync() {
        BlkDriverRequest r = BlkDriverRequest.control(BlkRequestLayout.VIRTIO_BLK_T_GET_ID);
        return loop.submit(r).thenApply(v -> {
            int n = 0;
            while (n < r.id.length && r.id[n] != 0) {
                n++;
            }
            return new String(r.id, 0, n, StandardCharsets.US_ASCII);
        });
    }

    private CompletableFuture<Void> data(int type, long sector, long gpa, long lengthBytes) {
        if (sector < 0 || lengthBytes <= 0 || (lengthBytes & (SECTOR_SIZE - 1)) != 0) {
            throw new IllegalArgumentException("sector " + sector + ", length " + lengthBytes + ": need sector >= 0 and a positive multiple of 512");
        }
        long segment = loop.segmentBytes();
        long perRequest = loop.requestBytes();
        List<CompletableFuture<Void>> parts = new ArrayList<>();
        for (long done = 0; done < lengthBytes; ) {
            long n = Math.min(perRequest, lengthBytes - done);
            int buffers = (int) ((n + segment - 1) / segment);
            long[] gpas = new long[buffers];
            long[] lengths = new long[buffers];
            for (int b = 0; b < buffers; b++) {
                gpas[b] = gpa + done + b * segment;
                lengths[b] = Math.min(segment, n - b * segment);
            }
            parts.add(loop.submit(BlkDriverRequest.data(type, sector + (done >>> SECTOR_SHIFT), gpas, lengths)));
            done += n;
        }
        return all(parts);
    }

    private CompletableFuture<Void> ranges(int type, long sector, long sectors, long maxSectors, int flags) {
        if (sector < 0 || sectors <= 0) {
            throw new IllegalArgumentException("sector " + sector + ", count " + sectors + ": need sector >= 0 and count >= 1");
        }
        if (maxSectors == 0) {
            return CompletableFuture.failedFuture(new BlkUnsupportedException("request type " + type + " not negotiated"));
        }
        List<CompletableFuture<Void>> parts = new ArrayList<>();
        for (long done = 0; done < sectors; ) {
            long n = Math.min(maxSectors, sectors - done);
            parts.add(loop.submit(BlkDriverRequest.range(type, sector + done, n, flags)));
            done += n;
        }
        return all(parts);
    }

    private static CompletableFuture<Void> all(List<CompletableFuture<Void>> parts) {
        return parts.size() == 1 ? parts.getFirst() : CompletableFuture.allOf(parts.toArray(new CompletableFuture<?>[0]));
    }

    /**
     * Blocking {@link #readAsync}.
     *
     * @param sector      the first sector
     * @param gpa         the destination in private RAM
     * @param lengthBytes a positive multiple of 512
     * @throws IOException if the request fails; {@link InterruptedIOException} if interrupted while waiting
     */
    public void read(long sector, long gpa, long lengthBytes) throws IOException {
        await(readAsync(sector, gpa, lengthBytes));
    }

    /**
     * Blocking {@link #writeAsync}.
     *
     * @param sector      the first sector
     * @param gpa         the source in private RAM
     * @param lengthBytes a positive multiple of 512
     * @throws IOException if the request fails
     */
    public void write(long sector, long gpa, long lengthBytes) throws IOException {
        await(writeAsync(sector, gpa, lengthBytes));
    }

    /**
     * Blocking {@link #flushAsync}.
     *
     * @throws IOException if the flush fails
     */
    public void flush() throws IOException {
        await(flushAsync());
    }

    /**
     * Blocking {@link #discardAsync}.
     *
     * @param sector  the first sector
     * @param sectors how many
     * @throws IOException if the request fails
     */
    public void discard(long sector, long sectors) throws IOException {
        await(discardAsync(sector, sectors));
    }

    /**
     * Blocking {@link #writeZeroesAsync}.
     *
     * @param sector  the first sector
     * @param sectors how many
     * @param unmap   whether the device may deallocate
     * @throws IOException if the request fails
     */
    public void writeZeroes(long sector, long sectors, boolean unmap) throws IOException {
        await(writeZeroesAsync(sector, sectors, unmap));
    }

    /**
     * Blocking {@link #serialAsync}.
     *
     * @return the id
     * @throws IOException if the request fails
     */
    public String serial() throws IOException {
        return await(serialAsync());
    }

    /**
     * Reads into a Java array through the staging area.
     *
     * @param offsetBytes where on the disk, a multiple of 512
     * @param dst         the destination
     * @param off         where in {@code dst}
     * @param len         how many bytes, a multiple of 512
     * @throws IOException if a request fails
     */
    public void readBytes(long offsetBytes, byte[] dst, int off, int len) throws IOException {
        Objects.checkFromIndexSize(off, len, dst.length);
        readBytes(offsetBytes, MemorySegment.ofArray(dst).asSlice(off, len));
    }

    /**
     * Writes from a Java array through the staging area.
     *
     * @param offsetBytes where on the disk, a multiple of 512
     * @param src         the source
     * @param off         where in {@code src}
     * @param len         how many bytes, a multiple of 512
     * @throws IOException if a request fails
     */
    public void writeBytes(long offsetBytes, byte[] src, int off, int len) throws IOException {
        Objects.checkFromIndexSize(off, len, src.length);
        writeBytes(offsetBytes, MemorySegment.ofArray(src).asSlice(off, len));
    }

    /**
     * Reads into any memory segment through the staging area.
     *
     * @param offsetBytes where on the disk, a multiple of 512
     * @param dst         the destination; its size is a multiple of 512
     * @throws IOException if a request fails
     */
    public void readBytes(long offsetBytes, MemorySegment dst) throws IOException {
        staged(offsetBytes, dst, false);
    }

    /**
     * Writes from any memory segment through the staging area.
     *
     * @param offsetBytes where on the disk, a multiple of 512
     * @param src         the source; its size is a multiple of 512
     * @throws IOException if a request fails
     */
    public void writeBytes(long offsetBytes, MemorySegment src) throws IOException {
        staged(offsetBytes, src, true);
    }

    private void staged(long offsetBytes, MemorySegment memory, boolean toDisk) throws IOException {
        if (offsetBytes < 0 || (offsetBytes & (SECTOR_SIZE - 1)) != 0 || (memory.byteSize() & (SECTOR_SIZE - 1)) != 0) {
            throw new IllegalArgumentException("offset " + offsetBytes + " and length " + memory.byteSize() + " must be multiples of 512");
        }
        long chunk = takeChunk();
        try {
            for (long done = 0; done < memory.byteSize(); ) {
                long n = Math.min(chunkBytes, memory.byteSize() - done);
                long sector = (offsetBytes + done) >>> SECTOR_SHIFT;
                if (toDisk) {
                    MemorySegment.copy(memory, done, staging, chunk, n);
                    awaitUninterruptibly(writeAsync(sector, stagingGpa + chunk, n));
                } else {
                    awaitUninterruptibly(readAsync(sector, stagingGpa + chunk, n));
                    MemorySegment.copy(staging, chunk, memory, done, n);
                }
                done += n;
            }
        } finally {
            freeChunks.add(chunk);
        }
    }

    private long takeChunk() throws InterruptedIOException {
        try {
            return freeChunks.take();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted waiting for a staging buffer");
        }
    }

    /**
     * Resets and re-initialises the device and resubmits every request that was pending, in order;
     * for {@link BlockDeviceOptions.FailurePolicy#HOLD}, or after a failure under FAIL.
     *
     * @throws BlkDeviceFailedException if the device cannot be re-initialised (pending requests then fail)
     */
    public void recover() throws BlkDeviceFailedException {
        try {
            awaitUninterruptibly(loop.recover());
        } catch (BlkDeviceFailedException e) {
            throw e;
        } catch (IOException e) {
            throw new BlkDeviceFailedException("recovery failed: " + e.getMessage(), e);
        }
    }

    /**
     * Whether the device failed and requests are held or failing (until {@link #recover()}).
     *
     * @return true when not running normally
     */
    public boolean isFailed() {
        return loop.state() != BlkDriverLoop.State.RUNNING;
    }

    /**
     * Requests completed by the device (any status) since opening.
     *
     * @return the count
     */
    public long completedRequests() {
        return loop.completedRequests();
    }

    /**
     * How many times the device was reset and re-initialised after a failure.
     *
     * @return the count
     */
    public long recoveries() {
        return loop.recoveries();
    }

    /**
     * How often the driver thread waited a full idle period (100 ms) with requests in flight and no
     * notification: 0 unless the device is slow or a notification was lost.
     *
     * @return the count
     */
    public long missedWakeups() {
        return loop.missedWakeups();
    }

    /** Fails whatever is pending, resets the device and stops the driver thread. The frontend stays open. */
    @Override
    public void close() {
        loop.close();
    }

    @Override
    public String toString() {
        return "BlockDevice(" + frontend.transport().name() + ", " + loop.info() + ")";
    }

    private static <T> T await(CompletableFuture<T> future) throws IOException {
        try {
            return future.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted waiting for the block device (the request stays in flight)");
        } catch (ExecutionException e) {
            throw unwrap(e.getCause());
        }
    }

    /** Waits without giving up on interrupt: the device may still write into the staging chunk. */
    private static <T> T awaitUninterruptibly(CompletableFuture<T> future) throws IOException {
        try {
            return future.join();
        } catch (CompletionException e) {
            throw unwrap(e.getCause());
        }
    }

    private static IOException unwrap(Throwable cause) {
        Throwable c = cause instanceof CompletionException && cause.getCause() != null ? cause.getCause() : cause;
        if (c instanceof IOException io) {
            return io;
        }
        if (c instanceof RuntimeException re) {
            throw re;
        }
        return new IOException(c);
    }
}
