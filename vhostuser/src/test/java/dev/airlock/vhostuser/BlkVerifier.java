package dev.airlock.vhostuser;

import dev.airlock.devices.blk.BlockDevice;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Random concurrent reads and writes with verification against a model of the disk. Every 4 KiB
 * block has a version (0: never written, so zero); a write of version v fills the block with a
 * pattern of (block, v), so a read can tell a lost write, a torn one and a misplaced one apart.
 * Requests in flight never overlap, so each completion has exactly one right answer. Buffers live in
 * the VM's private RAM, one slot of {@link #MAX_BLOCKS} blocks per request in flight.
 */
final class BlkVerifier {
    static final int BLOCK_BYTES = 4096;
    static final int MAX_BLOCKS = 32;
    private static final int SECTORS_PER_BLOCK = BLOCK_BYTES / 512;

    private final BlockDevice blk;
    private final MemorySegment buffers;
    private final long buffersGpa;
    private final int depth;
    private final int[] version;
    private final BitSet busy;
    private final SplittableRandom random;
    private volatile boolean stopRequested;
    private long writes;
    private long reads;
    private long bytes;

    /** One request in flight. */
    private record Op(int slot, boolean write, int first, int count, int[] expected, CompletableFuture<Void> future) {
    }

    /**
     * @param buffers    private RAM for the buffers: at least {@code depth * MAX_BLOCKS * 4 KiB}
     * @param buffersGpa its guest-physical address
     */
    BlkVerifier(BlockDevice blk, MemorySegment buffers, long buffersGpa, int depth, long seed) {
        if (buffers.byteSize() < (long) depth * MAX_BLOCKS * BLOCK_BYTES) {
            throw new IllegalArgumentException("buffers too small for depth " + depth);
        }
        this.blk = blk;
        this.buffers = buffers;
        this.buffersGpa = buffersGpa;
        this.depth = depth;
        long blocks = blk.capacitySectors() / SECTORS_PER_BLOCK;
        this.version = new int[Math.toIntExact(blocks)];
        this.busy = new BitSet(version.length);
        this.random = new SplittableRandom(seed);
    }

    /** Makes {@link #run} stop submitting; it returns once what is in flight completed. Any thread. */
    void requestStop() {
        stopRequested = true;
    }

    long writes() {
        return writes;
    }

    long reads() {
        return reads;
    }

    long bytes() {
        return bytes;
    }

    /** The pattern word {@code word} of {@code block} at {@code version} (splitmix64 of the three). */
    static long pattern(int block, int version, int word) {
        long z = ((long) block << 32 | version) * 0x9E3779B97F4A7C15L + word * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private static void fill(MemorySegment target, int block, int version) {
        for (int w = 0; w < BLOCK_BYTES / 8; w++) {
            target.set(ValueLayout.JAVA_LONG_UNALIGNED, w * 8L, pattern(block, version, w));
        }
    }

    /** Null if {@code got} holds {@code block} at {@code version}, else what is wrong. */
    private static String check(MemorySegment got, int block, int version) {
        for (int w = 0; w < BLOCK_BYTES / 8; w++) {
            long want = version == 0 ? 0 : pattern(block, version, w);
            long have = got.get(ValueLayout.JAVA_LONG_UNALIGNED, w * 8L);
            if (have != want) {
                return "block " + block + " (version " + version + ") differs at byte " + w * 8 + ": 0x" + Long.toHexString(have)
                        + " instead of 0x" + Long.toHexString(want);
            }
        }
        return null;
    }

    /**
     * Runs {@code count} random requests of 1 to {@link #MAX_BLOCKS} blocks, a share
     * {@code writeShare} of them writes, keeping {@code depth} in flight.
     *
     * @throws AssertionError on the first failed request or wrong data
     */
    void run(int count, double writeShare) throws Exception {
        LinkedBlockingQueue<Op> done = new LinkedBlockingQueue<>();
        List<Integer> free = new ArrayList<>();
        for (int s = 0; s < depth; s++) {
            free.add(s);
        }
        int submitted = 0;
        int inFlight = 0;
        while ((submitted < count && !stopRequested) || inFlight > 0) {
            if (submitted < count && !stopRequested && !free.isEmpty()) {
                Op op = submit(free.removeLast(), random.nextDouble() < writeShare);
                op.future.whenComplete((v, e) -> done.add(op));
                submitted++;
                inFlight++;
                continue;
            }
            Op op = done.poll(60, TimeUnit.SECONDS);
            if (op == null) {
                throw new AssertionError(inFlight + " requests did not complete within 60 s");
            }
            inFlight--;
            complete(op);
            free.add(op.slot);
        }
    }

    private Op submit(int slot, boolean write) {
        int count = 1 + random.nextInt(MAX_BLOCKS);
        int first;
        do {
            first = random.nextInt(version.length - count + 1);
        } while (busy.previousSetBit(first + count - 1) >= first);
        busy.set(first, first + count);
        int[] expected = new int[count];
        MemorySegment buffer = slotBuffer(slot, count);
        for (int i = 0; i < count; i++) {
            expected[i] = write ? version[first + i] + 1 : version[first + i];
            if (write) {
                fill(buffer.asSlice((long) i * BLOCK_BYTES, BLOCK_BYTES), first + i, expected[i]);
            }
        }
        long gpa = buffersGpa + (long) slot * MAX_BLOCKS * BLOCK_BYTES;
        long sector = (long) first * SECTORS_PER_BLOCK;
        CompletableFuture<Void> f = write ? blk.writeAsync(sector, gpa, (long) count * BLOCK_BYTES)
                : blk.readAsync(sector, gpa, (long) count * BLOCK_BYTES);
        return new Op(slot, write, first, count, expected, f);
    }

    private MemorySegment slotBuffer(int slot, int count) {
        return buffers.asSlice((long) slot * MAX_BLOCKS * BLOCK_BYTES, (long) count * BLOCK_BYTES);
    }

    private void complete(Op op) throws Exception {
        try {
            op.future.get();
        } catch (java.util.concurrent.ExecutionException e) {
            throw new AssertionError((op.write ? "write" : "read") + " of blocks " + op.first + "+" + op.count + " failed: "
                    + e.getCause(), e.getCause());
        }
        bytes += (long) op.count * BLOCK_BYTES;
        MemorySegment buffer = slotBuffer(op.slot, op.count);
        for (int i = 0; i < op.count; i++) {
            if (op.write) {
                version[op.first + i] = op.expected[i];
            } else {
                String wrong = check(buffer.asSlice((long) i * BLOCK_BYTES, BLOCK_BYTES), op.first + i, op.expected[i]);
                if (wrong != null) {
                    throw new AssertionError("read back through the device: " + wrong);
                }
            }
        }
        if (op.write) {
            writes++;
        } else {
            reads++;
        }
        busy.clear(op.first, op.first + op.count);
    }

    /** Reads the whole disk through the device, {@code depth} requests of 128 KiB in flight, and checks every block. */
    void verifyAllThroughDevice() throws Exception {
        LinkedBlockingQueue<Op> done = new LinkedBlockingQueue<>();
        int next = 0;
        int inFlight = 0;
        List<Integer> free = new ArrayList<>();
        for (int s = 0; s < depth; s++) {
            free.add(s);
        }
        while (next < version.length || inFlight > 0) {
            if (next < version.length && !free.isEmpty()) {
                int slot = free.removeLast();
                int count = Math.min(MAX_BLOCKS, version.length - next);
                int[] expected = new int[count];
                System.arraycopy(version, next, expected, 0, count);
                long gpa = buffersGpa + (long) slot * MAX_BLOCKS * BLOCK_BYTES;
                Op op = new Op(slot, false, next, count, expected,
                        blk.readAsync((long) next * SECTORS_PER_BLOCK, gpa, (long) count * BLOCK_BYTES));
                op.future.whenComplete((v, e) -> done.add(op));
                next += count;
                inFlight++;
                continue;
            }
            Op op = done.poll(60, TimeUnit.SECONDS);
            if (op == null) {
                throw new AssertionError("a verification read did not complete within 60 s");
            }
            inFlight--;
            complete(op);
            free.add(op.slot);
        }
    }

    /** Checks every block of the image file on the host. */
    void verifyImage(Path image) throws IOException {
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.READ)) {
            ByteBuffer chunk = ByteBuffer.allocateDirect(MAX_BLOCKS * BLOCK_BYTES).order(ByteOrder.nativeOrder());
            MemorySegment view = MemorySegment.ofBuffer(chunk);
            for (int first = 0; first < version.length; first += MAX_BLOCKS) {
                chunk.clear();
                while (chunk.hasRemaining() && ch.read(chunk, (long) first * BLOCK_BYTES + chunk.position()) > 0) {
                    // read the whole chunk
                }
                int count = Math.min(MAX_BLOCKS, version.length - first);
                for (int i = 0; i < count; i++) {
                    String wrong = check(view.asSlice((long) i * BLOCK_BYTES, BLOCK_BYTES), first + i, version[first + i]);
                    if (wrong != null) {
                        throw new AssertionError("host image: " + wrong);
                    }
                }
            }
        }
    }
}
