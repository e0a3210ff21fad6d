package dev.airlock.devices.console;

import dev.airlock.virtio.DescriptorChain;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A bounded FIFO of bytes between a console endpoint's pump thread and a queue worker. Producers
 * wait for space (backpressure, nothing is dropped); the queue worker side never blocks on the
 * ring except in {@link #awaitSpace}, which is interruptible, so a reset can always stop it.
 * Thread-safe.
 */
final class ByteRing {
    private final byte[] buffer;
    private final MemorySegment segment;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition notEmpty = lock.newCondition();
    private final Condition notFull = lock.newCondition();
    private int head;   // next byte to take
    private int count;
    private long takenBytes; // every byte take() ever returned; guarded by lock
    private boolean closed;
    private volatile Runnable onData;

    ByteRing(int capacity) {
        this.buffer = new byte[capacity];
        this.segment = MemorySegment.ofArray(buffer);
    }

    /** Called (outside the lock) after bytes were put. */
    void setOnData(Runnable listener) {
        onData = listener;
    }

    /** Puts all of {@code b[off, off+len)}, waiting for space; returns false if the ring closed first. */
    boolean put(byte[] b, int off, int len) throws InterruptedException {
        int done = 0;
        while (done < len) {
            lock.lockInterruptibly();
            try {
                while (count == buffer.length && !closed) {
                    notFull.await();
                }
                if (closed) {
                    return false;
                }
                int n = Math.min(len - done, buffer.length - count);
                int tail = (head + count) % buffer.length;
                int first = Math.min(n, buffer.length - tail);
                System.arraycopy(b, off + done, buffer, tail, first);
                System.arraycopy(b, off + done + first, buffer, 0, n - first);
                count += n;
                done += n;
                notEmpty.signalAll();
            } finally {
                lock.unlock();
            }
            notifyData();
        }
        return true;
    }

    /** Puts one byte if there is room; never waits. */
    boolean offer(byte b) {
        lock.lock();
        try {
            if (count == buffer.length || closed) {
                return false;
            }
            buffer[(head + count) % buffer.length] = b;
            count++;
            notEmpty.signalAll();
        } finally {
            lock.unlock();
        }
        notifyData();
        return true;
    }

    private void notifyData() {
        Runnable r = onData;
        if (r != null) {
            r.run();
        }
    }

    /** Takes 1 to {@code len} bytes, waiting for some; returns -1 once closed and empty. */
    int take(byte[] b, int off, int len) throws InterruptedException {
        lock.lockInterruptibly();
        try {
            while (count == 0 && !closed) {
                notEmpty.await();
            }
            if (count == 0) {
                return -1;
            }
            int n = Math.min(len, count);
            int first = Math.min(n, buffer.length - head);
            System.arraycopy(buffer, head, b, off, first);
            System.arraycopy(buffer, 0, b, off + first, n - first);
            head = (head + n) % buffer.length;
            count -= n;
            takenBytes += n;
            notFull.signalAll();
            return n;
        } finally {
            lock.unlock();
        }
    }

    /** Moves as many buffered bytes as fit into the chain's device-writable buffers; never waits. */
    long drainInto(DescriptorChain chain) {
        lock.lock();
        try {
            int n = (int) Math.min(count, chain.writableBytes());
            int first = Math.min(n, buffer.length - head);
            long written = chain.writeTo(0, segment.asSlice(head, first));
            written += chain.writeTo(first, segment.asSlice(0, n - first));
            head = (head + n) % buffer.length;
            count -= n;
            if (n > 0) {
                notFull.signalAll();
            }
            return written;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Copies device-readable bytes of a chain from {@code offset} into the free space; never waits.
     * Returns how many bytes were taken (0 when the ring is full); once closed, takes and discards them all.
     */
    long fillFrom(DescriptorChain chain, long offset) {
        lock.lock();
        try {
            if (closed) {
                return Math.max(0, chain.readableBytes() - offset); // the endpoint is gone: discarded
            }
            int n = (int) Math.min(buffer.length - count, chain.readableBytes() - offset);
            if (n <= 0) {
                return 0;
            }
            int tail = (head + count) % buffer.length;
            int first = Math.min(n, buffer.length - tail);
            long read = chain.readFrom(offset, segment.asSlice(tail, first));
            read += chain.readFrom(offset + first, segment.asSlice(0, n - first));
            count += n;
            notEmpty.signalAll();
            return read;
        } finally {
            lock.unlock();
        }
    }

    /** Waits until there is free space or the ring closed; interruptible. */
    void awaitSpace() throws InterruptedException {
        lock.lockInterruptibly();
        try {
            while (count == buffer.length && !closed) {
                notFull.await();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Bytes buffered. */
    int available() {
        lock.lock();
        try {
            return count;
        } finally {
            lock.unlock();
        }
    }

    /** Every byte {@link #take} has returned so far. */
    long takenBytes() {
        lock.lock();
        try {
            return takenBytes;
        } finally {
            lock.unlock();
        }
    }

    /** Whether the ring is empty. */
    boolean isEmpty() {
        return available() == 0;
    }

    /** Wakes every waiter; puts fail from now on, takes drain what is left then return -1. */
    void close() {
        lock.lock();
        try {
            closed = true;
            notEmpty.signalAll();
            notFull.signalAll();
        } finally {
            lock.unlock();
        }
    }
}
