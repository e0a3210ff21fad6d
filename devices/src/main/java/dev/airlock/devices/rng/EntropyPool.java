package dev.airlock.devices.rng;

import dev.airlock.virtio.DescriptorChain;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A bounded buffer of random bytes kept full by a generator thread, so that the requestq's worker
 * never calls the {@link EntropySupplier} itself: a supplier that blocks (a {@code SecureRandom}
 * waiting for the kernel) then holds up neither the worker nor a reset, which only waits for the
 * worker. The generator asks the supplier for whole {@link #CHUNK_BYTES} chunks, so the bytes
 * handed out are the supplier's stream in order, however requests cut it. Bytes handed out are
 * zeroed in the buffer. Thread-safe.
 */
final class EntropyPool {
    /** Bytes per supplier call (a multiple of 4: {@code Random.nextBytes} then wastes nothing). */
    static final int CHUNK_BYTES = 4096;

    private final EntropySupplier supplier;
    private final RngMetrics metrics;
    private final byte[] buffer;
    private final MemorySegment segment;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition notEmpty = lock.newCondition();
    private final Condition notFull = lock.newCondition();
    private final Thread generator;
    private int head;  // guarded by lock
    private int count; // guarded by lock
    private volatile RuntimeException failure;
    private volatile boolean closed;

    EntropyPool(EntropySupplier supplier, int capacityChunks, RngMetrics metrics, String name) {
        this.supplier = supplier;
        this.metrics = metrics;
        this.buffer = new byte[capacityChunks * CHUNK_BYTES];
        this.segment = MemorySegment.ofArray(buffer);
        this.generator = Thread.ofPlatform().daemon().name("rng generator " + name).unstarted(this::generate);
    }

    void start() {
        generator.start();
    }

    private void generate() {
        byte[] chunk = new byte[CHUNK_BYTES];
        try {
            while (!closed) {
                long start = System.nanoTime();
                supplier.nextBytes(chunk);
                metrics.recordGeneration(CHUNK_BYTES, System.nanoTime() - start);
                lock.lockInterruptibly();
                try {
                    while (buffer.length - count < CHUNK_BYTES && !closed) {
                        notFull.await();
                    }
                    int tail = (head + count) % buffer.length;
                    // The capacity is a whole number of chunks and chunks are added whole, so tail is chunk-aligned.
                    System.arraycopy(chunk, 0, buffer, tail, CHUNK_BYTES);
                    count += CHUNK_BYTES;
                    notEmpty.signalAll();
                } finally {
                    lock.unlock();
                }
                Arrays.fill(chunk, (byte) 0);
            }
        } catch (InterruptedException e) {
            // closing
        } catch (RuntimeException e) {
            failure = e;
            lock.lock();
            try {
                notEmpty.signalAll();
            } finally {
                lock.unlock();
            }
        }
    }

    /**
     * Copies up to {@code maxBytes} buffered bytes into the chain's device-writable buffers; never
     * waits. Returns how many (0 when the buffer is empty).
     *
     * @throws IllegalStateException if the supplier failed or the pool closed, and nothing is left
     */
    long drainInto(DescriptorChain chain, int maxBytes) {
        lock.lock();
        try {
            int n = Math.min(count, maxBytes);
            if (n == 0) {
                RuntimeException f = failure;
                if (f != null) {
                    throw new IllegalStateException("entropy source failed: " + f, f);
                }
                if (closed) {
                    throw new IllegalStateException("entropy device closed");
                }
                return 0;
            }
            int first = Math.min(n, buffer.length - head);
            long written = chain.writeTo(0, segment.asSlice(head, first));
            written += chain.writeTo(first, segment.asSlice(0, n - first));
            Arrays.fill(buffer, head, head + first, (byte) 0); // entropy handed out is not kept
            Arrays.fill(buffer, 0, n - first, (byte) 0);
            head = (head + n) % buffer.length;
            count -= n;
            notFull.signalAll();
            return written;
        } finally {
            lock.unlock();
        }
    }

    /** Waits until bytes are buffered, the supplier failed, or the pool closed; interruptible. */
    void awaitBytes() throws InterruptedException {
        lock.lockInterruptibly();
        try {
            while (count == 0 && failure == null && !closed) {
                notEmpty.await();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Stops the generator (a supplier call in progress may finish later) and wipes the buffer. */
    void close() {
        closed = true;
        generator.interrupt();
        lock.lock();
        try {
            Arrays.fill(buffer, (byte) 0);
            count = 0;
            notEmpty.signalAll();
            notFull.signalAll();
        } finally {
            lock.unlock();
        }
    }
}
