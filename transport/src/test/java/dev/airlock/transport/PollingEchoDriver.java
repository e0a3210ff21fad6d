package dev.airlock.transport;

import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtqueueDriver;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A polling driver of the echo device: turns used buffer notifications off
 * ({@link VirtqueueDriver#disableCallbacks()}) and spins on {@link VirtqueueDriver#reap}. Like
 * {@link EchoDriver} it keeps up to {@code inFlight} requests of random data in the queue and checks
 * that each comes back reversed. It counts the kicks it had to send (none, if the device suppressed
 * them) and the used buffer interrupts that reached it anyway. The spin yields now and then and
 * gives up when nothing completes for {@link #STALL_TIMEOUT_NS}.
 */
final class PollingEchoDriver {
    static final int MAX_LENGTH = EchoDriver.MAX_LENGTH;
    private static final long STALL_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(10);

    private final VirtioFrontend frontend;
    private final MemorySegment ram;
    private final long ramBase;
    final AtomicLong interrupts = new AtomicLong();
    long kicks;

    PollingEchoDriver(VirtioFrontend frontend, MemorySegment ram, long ramBase) {
        this.frontend = frontend;
        this.ram = ram;
        this.ramBase = ramBase;
        frontend.setListener(interrupts::incrementAndGet);
    }

    /** Runs {@code total} requests; returns the elapsed nanoseconds. Fails with AssertionError on bad data or a stall. */
    long run(int total, int inFlight, int maxLength, long seed) {
        VirtqueueDriver<Integer> q = frontend.queue(0);
        q.disableCallbacks();
        SplittableRandom random = new SplittableRandom(seed);
        ScatterGather sg = new ScatterGather(2);
        int[] lengths = new int[inFlight];
        int[] free = new int[inFlight];
        int[] freeCount = {0};
        for (int i = 0; i < inFlight; i++) {
            free[freeCount[0]++] = i;
        }
        int[] completed = {0};
        int submitted = 0;
        long start = System.nanoTime();
        long lastProgressNs = start;
        int idleSpins = 0;
        while (completed[0] < total) {
            boolean added = false;
            while (submitted < total && freeCount[0] > 0) {
                int slot = free[--freeCount[0]];
                int length = 1 + random.nextInt(maxLength);
                long outOffset = 2L * slot * MAX_LENGTH;
                MemorySegment out = ram.asSlice(outOffset, length);
                for (int i = 0; i < length; i++) {
                    out.set(ValueLayout.JAVA_BYTE, i, (byte) random.nextInt());
                }
                lengths[slot] = length;
                sg.clear().out(ramBase + outOffset, length).in(ramBase + outOffset + MAX_LENGTH, length);
                if (!q.add(sg, slot)) {
                    free[freeCount[0]++] = slot;
                    break;
                }
                submitted++;
                added = true;
            }
            if (added && frontend.kick(0)) {
                kicks++;
            }
            int reaped = q.reap((slot, lengthBytes) -> {
                check(slot, lengths[slot], lengthBytes);
                free[freeCount[0]++] = slot;
                completed[0]++;
            }, Integer.MAX_VALUE);
            if (q.isBroken()) {
                throw new AssertionError("queue broken: " + q.fault());
            }
            long now = System.nanoTime();
            if (reaped > 0) {
                lastProgressNs = now;
                idleSpins = 0;
            } else if (now - lastProgressNs > STALL_TIMEOUT_NS) {
                throw new AssertionError("nothing completed for 10 s; " + completed[0] + " of " + total + " done, status "
                        + frontend.status());
            } else if (++idleSpins % 256 == 0) {
                Thread.yield(); // two cores, shared: let the device's poller run
            } else {
                Thread.onSpinWait();
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
