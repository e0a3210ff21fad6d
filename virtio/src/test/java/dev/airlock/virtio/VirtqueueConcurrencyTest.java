package dev.airlock.virtio;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A driver thread and a device thread over real shared memory (two mappings of one memfd). In
 * notification mode each side sleeps on a doorbell (a semaphore) after re-enabling notifications
 * and re-checking, so a lost wakeup shows up as a timeout; in polling mode both spin.
 */
class VirtqueueConcurrencyTest {
    private static final int SIZE = 64;
    private static final int REQUESTS = 30_000;
    private static final long LE_LONG_BYTES = 8;

    /**
     * With a depth of 1 or 2 nearly every round trip goes through the sleep path, which is where a
     * missing re-check or fence loses a notification.
     */
    @ParameterizedTest(name = "eventIdx={0} indirect={1} polling={2} depth={3}")
    @CsvSource({"false,false,false,32", "true,false,false,32", "false,true,false,32", "true,true,false,32",
            "false,false,false,1", "true,false,false,1", "true,true,false,2", "false,true,false,2",
            "true,true,true,32", "false,false,true,32"})
    void shouldDeliverEveryRequestBetweenTwoThreads(boolean eventIdx, boolean indirect, boolean polling, int depth) throws Exception {
        long features = VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_VERSION_1)
                | (eventIdx ? VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_EVENT_IDX) : 0)
                | (indirect ? VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_INDIRECT_DESC) : 0);
        try (TestBed bed = new TestBed(TestDmaOps.Mode.DIRECT, 1 << 20, 2 * SIZE, 64)) {
            VirtqueueDriver<Integer> driver = new VirtqueueDriver<>("conc", bed.dma, SIZE, features);
            VirtqueueDevice device = bed.device(driver, features);
            Semaphore kick = new Semaphore(0);
            Semaphore interrupt = new Semaphore(0);
            AtomicBoolean stop = new AtomicBoolean();
            AtomicReference<Throwable> deviceError = new AtomicReference<>();
            Thread deviceThread = Thread.ofPlatform().name("device").start(() -> {
                try {
                    runDevice(device, kick, interrupt, stop, polling);
                } catch (Throwable t) {
                    deviceError.set(t);
                }
            });
            try {
                runDriver(bed, driver, kick, interrupt, polling, depth);
            } finally {
                stop.set(true);
                kick.release();
                deviceThread.join(10_000);
            }
            assertNull(deviceError.get());
            assertFalse(deviceThread.isAlive());
            assertFalse(driver.isBroken());
            assertFalse(device.isBroken());
            assertEquals(SIZE, driver.numFree());
            assertEquals(REQUESTS & 0xffff, device.nextUsed());
        }
    }

    /** Each request uses a free buffer pair (out, in); the device answers out + 1. */
    private static void runDriver(TestBed bed, VirtqueueDriver<Integer> driver, Semaphore kick, Semaphore interrupt,
                                  boolean polling, int depth) throws InterruptedException {
        long[] outGpa = new long[SIZE];
        long[] inGpa = new long[SIZE];
        for (int p = 0; p < SIZE; p++) {
            outGpa[p] = bed.allocBuffer();
            inGpa[p] = bed.allocBuffer();
        }
        ScatterGather sg = new ScatterGather(2);
        long[] expected = new long[SIZE];
        int[] freePairs = new int[SIZE];
        // Without indirect tables a request takes two descriptors, so at most SIZE / 2 are in flight.
        int[] freeCount = {Math.min(depth, SIZE / 2)};
        for (int p = 0; p < freeCount[0]; p++) {
            freePairs[p] = p;
        }
        int[] received = {0};
        VirtqueueDriver.UsedHandler<Integer> handler = (pair, len) -> {
            assertEquals(LE_LONG_BYTES, len);
            long answer = bed.driverView(inGpa[pair], 8).get(ValueLayout.JAVA_LONG_UNALIGNED, 0);
            if (answer != expected[pair]) {
                throw new AssertionError("pair " + pair + ": got " + answer + ", expected " + expected[pair]);
            }
            freePairs[freeCount[0]++] = pair;
            received[0]++;
        };
        int sent = 0;
        driver.disableCallbacks();
        while (received[0] < REQUESTS) {
            while (sent < REQUESTS && freeCount[0] > 0) {
                int pair = freePairs[--freeCount[0]];
                bed.driverView(outGpa[pair], 8).set(ValueLayout.JAVA_LONG_UNALIGNED, 0, sent);
                expected[pair] = sent + 1L;
                sg.clear().out(outGpa[pair], 8).in(inGpa[pair], 8);
                assertTrue(driver.add(sg, pair));
                sent++;
            }
            if (driver.kickPrepare()) {
                kick.release();
            }
            if (driver.reap(handler, SIZE) > 0 || (sent < REQUESTS && freeCount[0] > 0)) {
                continue;
            }
            if (polling) {
                Thread.onSpinWait();
            } else if (driver.enableCallbacks()) {
                assertTrue(interrupt.tryAcquire(5, TimeUnit.SECONDS), "lost used buffer notification");
                driver.disableCallbacks();
            } else {
                driver.disableCallbacks();
            }
        }
    }

    private static void runDevice(VirtqueueDevice device, Semaphore kick, Semaphore interrupt, AtomicBoolean stop,
                                  boolean polling) throws InterruptedException {
        MemorySegment scratch = MemorySegment.ofArray(new long[1]);
        device.disableNotifications();
        int sincePublish = 0;
        while (!stop.get()) {
            DescriptorChain chain = device.pop();
            if (chain != null) {
                chain.readFrom(0, scratch);
                scratch.set(ValueLayout.JAVA_LONG, 0, scratch.get(ValueLayout.JAVA_LONG, 0) + 1);
                chain.writeTo(0, scratch);
                device.addUsed(chain, 8);
                if (++sincePublish < 16) {
                    continue;
                }
            }
            sincePublish = 0;
            device.publishUsed();
            if (device.needsInterrupt()) {
                interrupt.release();
            }
            if (chain != null) {
                continue;
            }
            if (polling) {
                Thread.onSpinWait();
            } else if (device.enableNotifications()) {
                // Nothing pending: sleep until kicked. A timeout here only re-polls (the driver
                // side's 5 s timeout is the lost-notification check for used buffers).
                if (!kick.tryAcquire(5, TimeUnit.SECONDS) && !stop.get()) {
                    throw new AssertionError("lost available buffer notification");
                }
                device.disableNotifications();
            } else {
                device.disableNotifications();
            }
        }
    }
}
