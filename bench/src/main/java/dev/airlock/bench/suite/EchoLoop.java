package dev.airlock.bench.suite;

import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtqueueDriver;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * The driver side of the echo runs: keeps {@code depth} requests in flight on queue 0 of a
 * {@link BenchEchoDevice}, every buffer in the guest's private RAM and bounced through the
 * frontend's swiotlb pool. A small request is a 64 B out buffer and a 64 B in buffer; the first
 * 8 bytes carry a sequence number that must come back. A bulk request is one 64 KiB out buffer
 * that the device reads and uses with length 0.
 *
 * <p>When nothing is reaped, doorbell mode re-enables used-buffer notifications and sleeps until
 * the interrupt (with the event-index re-check, §2.7.10); polling mode leaves them off and spins
 * on {@link VirtqueueDriver#reap}.
 */
final class EchoLoop {
    /** Guest-physical address of the first small request's buffers in private RAM. */
    static final long SMALL_BASE = 0;
    /** Guest-physical address of the first bulk buffer in private RAM. */
    static final long BULK_BASE = 1L << 20;
    /** Private RAM the loop needs. */
    static final long RAM_BYTES = BULK_BASE + (long) Catalog.BULK_DEPTH * Catalog.BULK_BYTES;
    private static final long SMALL_STRIDE = 2L * Catalog.SMALL_BYTES;
    private static final long WAIT_SECONDS = 5;

    private final VirtioFrontend frontend;
    private final VirtqueueDriver<Integer> queue;
    private final MemorySegment ram;
    private final boolean polling;
    private final Semaphore wake = new Semaphore(0);
    private final ScatterGather sg = new ScatterGather(2);
    private final VirtqueueDriver.UsedHandler<Integer> onUsed = this::onUsed;
    private final long[] sequenceOf = new long[Catalog.DEEP_QUEUE];
    private final long[] submittedAt = new long[Catalog.DEEP_QUEUE];
    private final int[] free = new int[Catalog.DEEP_QUEUE];
    private int freeCount;
    private long nextSequence = 1;
    private boolean bulk;
    private long[] samples;
    private int sampleCount;
    private long completed;

    /**
     * Creates the loop on an initialised frontend.
     *
     * @param frontend the device's frontend, queue 0 set up
     * @param ram      the guest's private RAM, from GPA 0, at least {@link #RAM_BYTES}
     * @param polling  spin on reap rather than wait for interrupts
     */
    EchoLoop(VirtioFrontend frontend, MemorySegment ram, boolean polling) {
        this.frontend = frontend;
        this.queue = frontend.queue(0);
        this.ram = ram;
        this.polling = polling;
        frontend.setListener(wake::release);
        for (int i = 0; i < Catalog.BULK_DEPTH; i++) { // bulk data: any bytes, written once
            ram.asSlice(BULK_BASE + (long) i * Catalog.BULK_BYTES, Catalog.BULK_BYTES).fill((byte) (0x11 * (i + 1)));
        }
    }

    /**
     * Runs requests for {@code durationNs}, then waits for those still in flight.
     *
     * @param depth      requests in flight, at most 64 (16 for bulk)
     * @param bulkRun    64 KiB bulk writes rather than small echoes
     * @param durationNs how long to submit
     * @param latencies  receives each request's round trip in ns (may be null); recording stops when full
     * @return the requests completed while submitting, and how long that was in ns
     * @throws InterruptedException if interrupted while waiting for an interrupt
     */
    long[] run(int depth, boolean bulkRun, long durationNs, long[] latencies) throws InterruptedException {
        this.bulk = bulkRun;
        this.samples = latencies;
        this.sampleCount = 0;
        this.completed = 0;
        freeCount = 0;
        for (int i = depth - 1; i >= 0; i--) {
            free[freeCount++] = i;
        }
        queue.disableCallbacks();
        long start = System.nanoTime();
        long now = start;
        long inTime = 0;
        long inTimeNs = 0;
        boolean submitting = true;
        while (submitting || freeCount < depth) {
            if (submitting) {
                submitAll();
            }
            int reaped = queue.reap(onUsed, Integer.MAX_VALUE);
            if (queue.isBroken()) {
                throw new IllegalStateException("queue broken: " + queue.fault());
            }
            now = System.nanoTime();
            if (submitting && now - start >= durationNs) {
                submitting = false;
                inTime = completed;
                inTimeNs = now - start;
            }
            if (reaped == 0) {
                await();
            }
        }
        return new long[] {inTime, inTimeNs};
    }

    /** The number of latencies recorded by the last run. */
    int sampleCount() {
        return sampleCount;
    }

    private void submitAll() {
        boolean added = false;
        while (freeCount > 0) {
            int slot = free[--freeCount];
            sg.clear();
            if (bulk) {
                sg.out(BULK_BASE + (long) slot * Catalog.BULK_BYTES, Catalog.BULK_BYTES);
            } else {
                long out = SMALL_BASE + slot * SMALL_STRIDE;
                long sequence = nextSequence++;
                ram.set(ValueLayout.JAVA_LONG_UNALIGNED, out, sequence);
                sequenceOf[slot] = sequence;
                sg.out(out, Catalog.SMALL_BYTES).in(out + Catalog.SMALL_BYTES, Catalog.SMALL_BYTES);
            }
            if (samples != null) {
                submittedAt[slot] = System.nanoTime();
            }
            if (!queue.add(sg, slot)) {
                free[freeCount++] = slot;
                break;
            }
            added = true;
        }
        if (added) {
            frontend.kick(0);
        }
    }

    private void onUsed(Integer token, long lengthBytes) {
        int slot = token;
        if (bulk) {
            check(lengthBytes == 0, slot, lengthBytes);
        } else {
            long in = SMALL_BASE + slot * SMALL_STRIDE + Catalog.SMALL_BYTES;
            check(lengthBytes == Catalog.SMALL_BYTES && ram.get(ValueLayout.JAVA_LONG_UNALIGNED, in) == sequenceOf[slot], slot,
                    lengthBytes);
        }
        if (samples != null && sampleCount < samples.length) {
            samples[sampleCount++] = System.nanoTime() - submittedAt[slot];
        }
        free[freeCount++] = slot;
        completed++;
    }

    private void check(boolean ok, int slot, long lengthBytes) {
        if (!ok) {
            throw new IllegalStateException("request in slot " + slot + " came back wrong: used length " + lengthBytes
                    + (bulk ? "" : ", sequence " + sequenceOf[slot]));
        }
    }

    private void await() throws InterruptedException {
        if (polling) {
            Thread.onSpinWait();
            return;
        }
        // Re-enable and re-check (§2.7.10): false means used entries arrived meanwhile.
        if (queue.enableCallbacks() && !wake.tryAcquire(WAIT_SECONDS, TimeUnit.SECONDS)) {
            throw new IllegalStateException("no used buffers within " + WAIT_SECONDS + " s; status " + frontend.status());
        }
        if (queue.isBroken()) {
            throw new IllegalStateException("queue broken: " + queue.fault());
        }
        queue.disableCallbacks();
    }
}
