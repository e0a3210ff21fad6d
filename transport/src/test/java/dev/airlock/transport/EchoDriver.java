package dev.airlock.transport;

import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtqueueDriver;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * The test driver of the echo device: keeps up to {@code inFlight} requests of random data in the
 * queue, each an out buffer and an in buffer in the guest's private RAM, and checks that every in
 * buffer comes back as its out buffer reversed.
 */
final class EchoDriver {
    static final int MAX_LENGTH = 2048;

    private final VirtioFrontend frontend;
    private final MemorySegment ram;
    private final long ramBase;
    private final Semaphore wake = new Semaphore(0);

    EchoDriver(VirtioFrontend frontend, MemorySegment ram, long ramBase) {
        this.frontend = frontend;
        this.ram = ram;
        this.ramBase = ramBase;
        frontend.setListener(wake::release);
    }

    /** Runs {@code total} requests; returns the elapsed nanoseconds. Fails with AssertionError on bad data. */
    long run(int total, int inFlight, int maxLength, long seed) throws InterruptedException {
        VirtqueueDriver<Integer> q = frontend.queue(0);
        SplittableRandom random = new SplittableRandom(seed);
        ScatterGather sg = new ScatterGather(2);
        int[] lengths = new int[inFlight];
        int[] free = new int[inFlight];
        int freeCount = 0;
        for (int i = 0; i < inFlight; i++) {
            free[freeCount++] = i;
        }
        int[] freeRef = free;
        int[] counters = {freeCount, 0}; // free count, completed
        long start = System.nanoTime();
        int submitted = 0;
        while (counters[1] < total) {
            boolean added = false;
            while (submitted < total && counters[0] > 0) {
                int slot = freeRef[--counters[0]];
                int length = 1 + random.nextInt(maxLength);
                long outOffset = 2L * slot * MAX_LENGTH;
                MemorySegment out = ram.asSlice(outOffset, length);
                for (int i = 0; i < length; i++) {
                    out.set(ValueLayout.JAVA_BYTE, i, (byte) random.nextInt());
                }
                lengths[slot] = length;
                sg.clear().out(ramBase + outOffset, length).in(ramBase + outOffset + MAX_LENGTH, length);
                if (!q.add(sg, slot)) {
                    freeRef[counters[0]++] = slot;
                    break;
                }
                submitted++;
                added = true;
            }
            if (added) {
                frontend.kick(0);
            }
            int reaped = q.reap((slot, lengthBytes) -> {
                check(slot, lengths[slot], lengthBytes);
                freeRef[counters[0]++] = slot;
                counters[1]++;
            }, Integer.MAX_VALUE);
            if (q.isBroken()) {
                throw new AssertionError("queue broken: " + q.fault());
            }
            if (reaped == 0) {
                if (q.enableCallbacks() && !wake.tryAcquire(5, TimeUnit.SECONDS)) {
                    throw new AssertionError("no used buffers within 5 s; " + counters[1] + " of " + total + " done, status "
                            + frontend.status());
                }
                if (q.isBroken()) { // woken by onBroken: the rings may be unmapped already, touch nothing
                    throw new AssertionError("queue broken: " + q.fault());
                }
                q.disableCallbacks();
            }
        }
        return System.nanoTime() - start;
    }

    private void check(int slot, int length, long usedLength) {
        if (usedLength != length) {
            throw new AssertionError("request in slot " + slot + ": used length " + usedLength + ", sent " + length);
        }
        long outOffset = 2L * slot * MAX_LENGTH;
        for (int i = 0; i < length; i++) {
            byte sent = ram.get(ValueLayout.JAVA_BYTE, outOffset + i);
            byte back = ram.get(ValueLayout.JAVA_BYTE, outOffset + MAX_LENGTH + length - 1 - i);
            if (sent != back) {
                throw new AssertionError("request in slot " + slot + " of " + length + " bytes: byte " + i + " not reversed");
            }
        }
    }
}
