package dev.airlock.cli.loopback;

import dev.airlock.dma.BounceDmaOps;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;
import dev.airlock.memory.SharedMemory;
import dev.airlock.memory.sys.Linux;
import dev.airlock.swiotlb.SwiotlbPool;
import dev.airlock.swiotlb.SwiotlbStats;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.GuestRange;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDevice;
import dev.airlock.virtio.VirtqueueDriver;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicReference;
import java.util.zip.CRC32C;

/**
 * The loopback: one split virtqueue between a driver thread and a device thread, over a memfd
 * shared region that the two sides map separately (at different virtual addresses; the device
 * translates the driver's DMA addresses through its own mapping). Every buffer of the driver lives
 * in its private memory and is bounced through a swiotlb pool in the shared region by the bounce
 * DMA ops. Each request carries one out buffer of random data (driver to device) and one in buffer
 * that the device fills with its own random data (device to driver). Both sides checksum what they
 * send and what they receive (CRC32C); the run passes when the checksums of each direction agree.
 *
 * <p>Kicks and interrupts are real eventfds, suppressed with VIRTIO_F_EVENT_IDX: the device thread
 * sleeps in {@code read(kickfd)} when the ring is empty, the driver in {@code read(callfd)} when it
 * waits for completions.
 */
public final class Loopback {
    private static final long SHARED_REGION_BYTES = 64L << 20;
    /** Where the driver sees the shared region: its DMA addresses are driver gpas in it. */
    private static final long DRIVER_SHARED_BASE = 0x8000_0000L;

    private Loopback() {
    }

    /**
     * What to run.
     *
     * @param bytesEachWay how many bytes to move in each direction
     * @param bufferBytes  the size of each out and each in buffer, at most 256 KiB (one bounce mapping)
     * @param queueSize    the virtqueue size (a power of two)
     * @param seed         seed of the random data
     */
    public record Options(long bytesEachWay, int bufferBytes, int queueSize, long seed) {
        /** Checks the options. */
        public Options {
            if (bytesEachWay <= 0 || bufferBytes <= 0 || bufferBytes > 256 * 1024 || bufferBytes % 8 != 0) {
                throw new IllegalArgumentException("need bytes > 0 and a buffer size that is a multiple of 8 up to 256 KiB");
            }
        }
    }

    /**
     * What a run did.
     *
     * @param requests          requests completed
     * @param bytesToDevice     bytes the driver sent
     * @param bytesFromDevice   bytes the device sent
     * @param driverSentCrc     CRC32C of the driver's data as sent
     * @param deviceReceivedCrc CRC32C of the data as the device received it
     * @param deviceSentCrc     CRC32C of the device's data as sent
     * @param driverReceivedCrc CRC32C of the data as the driver received it (after the bounce back)
     * @param kicks             notifications the driver sent (the rest were suppressed)
     * @param interrupts        interrupts the device sent
     * @param pool              the bounce pool's statistics at the end
     * @param elapsedNs         wall time of the transfer
     */
    public record Report(long requests, long bytesToDevice, long bytesFromDevice, int driverSentCrc,
                         int deviceReceivedCrc, int deviceSentCrc, int driverReceivedCrc, long kicks,
                         long interrupts, SwiotlbStats pool, long elapsedNs) {
        /**
         * Whether both directions arrived intact.
         *
         * @return whether the checksums of each direction agree
         */
        public boolean intact() {
            return driverSentCrc == deviceReceivedCrc && deviceSentCrc == driverReceivedCrc;
        }
    }

    /**
     * Runs the loopback.
     *
     * @param options what to run
     * @return what happened
     * @throws InterruptedException if interrupted while waiting for the device thread
     */
    public static Report run(Options options) throws InterruptedException {
        int inFlight = options.queueSize();
        long privateBytes = Math.ceilDiv(2L * inFlight * options.bufferBytes(), 4096) * 4096;
        try (SharedMemory driverMapping = SharedMemory.create("loopback", SHARED_REGION_BYTES);
             SharedMemory deviceMapping = SharedMemory.map("loopback", driverMapping.fd(), SHARED_REGION_BYTES, false);
             PrivateMemory ram = new PrivateMemory("loopback-driver-ram", privateBytes)) {
            GuestAddressSpace driverSpace = new GuestAddressSpace("driver");
            driverSpace.add(ram.region(0));
            driverSpace.add(driverMapping.region(DRIVER_SHARED_BASE));
            GuestAddressSpace deviceDmaView = new GuestAddressSpace("device:dma");
            deviceDmaView.add(deviceMapping.region(DRIVER_SHARED_BASE));

            SwiotlbPool pool = SwiotlbPool.create("loopback", driverMapping.segment(), DRIVER_SHARED_BASE, driverSpace);
            long features = VirtioFeatures.VIRTIO_F_VERSION_1 | VirtioFeatures.VIRTIO_F_EVENT_IDX
                    | VirtioFeatures.VIRTIO_F_INDIRECT_DESC;
            int kickFd = Linux.eventfd(0, Linux.EFD_CLOEXEC);
            int callFd = Linux.eventfd(0, Linux.EFD_CLOEXEC);
            DriverSide driverSide;
            DeviceSide deviceSide;
            long elapsed;
            try (VirtqueueDriver<Integer> driver = new VirtqueueDriver<>("loopback", new BounceDmaOps(pool),
                    options.queueSize(), features)) {
                VirtqueueDevice device = new VirtqueueDevice("loopback", deviceDmaView, options.queueSize(),
                        driver.descAddr(), driver.availAddr(), driver.usedAddr(), features);
                deviceSide = new DeviceSide(device, kickFd, callFd, options.seed() ^ 0x5DEECE66DL);
                Thread deviceThread = Thread.ofPlatform().name("loopback-device").start(deviceSide);
                long start = System.nanoTime();
                driverSide = new DriverSide(driver, ram.segment(), kickFd, callFd, options);
                try {
                    driverSide.run();
                } finally {
                    deviceSide.stop();
                    deviceThread.join();
                }
                elapsed = System.nanoTime() - start;
                if (deviceSide.failure.get() != null) {
                    throw new IllegalStateException("device thread failed", deviceSide.failure.get());
                }
            } finally {
                Linux.close(kickFd);
                Linux.close(callFd);
            }
            // After close: the rings are back in the pool, so a clean run leaves it empty.
            return new Report(driverSide.completed, driverSide.bytesSent, deviceSide.bytesSent,
                    (int) driverSide.sentCrc.getValue(), (int) deviceSide.receivedCrc.getValue(),
                        (int) deviceSide.sentCrc.getValue(), (int) driverSide.receivedCrc.getValue(),
                    driverSide.kicks, deviceSide.interrupts, pool.stats(), elapsed);
        }
    }

    /** Fills a buffer with random longs. */
    static void fillRandom(MemorySegment buffer, SplittableRandom random) {
        long words = buffer.byteSize() / 8;
        for (long i = 0; i < words; i++) {
            buffer.setAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i, random.nextLong());
        }
    }

    /** The driver: keeps the queue full of requests and checks what comes back. */
    private static final class DriverSide {
        private final VirtqueueDriver<Integer> driver;
        private final MemorySegment ram;
        private final int kickFd;
        private final int callFd;
        private final Options options;
        private final SplittableRandom random;
        private final CRC32C sentCrc = new CRC32C();
        private final CRC32C receivedCrc = new CRC32C();
        private final ScatterGather sg = new ScatterGather(2);
        private final int[] freeSlots;
        private int freeCount;
        private long bytesSent;
        private long completed;
        private long kicks;

        DriverSide(VirtqueueDriver<Integer> driver, MemorySegment ram, int kickFd, int callFd, Options options) {
            this.driver = driver;
            this.ram = ram;
            this.kickFd = kickFd;
            this.callFd = callFd;
            this.options = options;
            this.random = new SplittableRandom(options.seed());
            this.freeSlots = new int[options.queueSize()];
            for (int i = 0; i < freeSlots.length; i++) {
                freeSlots[freeCount++] = i;
            }
        }

        void run() {
            long requestsTotal = Math.ceilDiv(options.bytesEachWay(), options.bufferBytes());
            long submitted = 0;
            while (completed < requestsTotal) {
                boolean added = false;
                while (submitted < requestsTotal && freeCount > 0) {
                    int slot = freeSlots[--freeCount];
                    long length = Math.min(options.bufferBytes(), options.bytesEachWay() - submitted * options.bufferBytes());
                    long outGpa = 2L * slot * options.bufferBytes();
                    long inGpa = outGpa + options.bufferBytes();
                    MemorySegment out = ram.asSlice(outGpa, length);
                    fillRandom(out, random);
                    if (!driver.add(sg.clear().out(outGpa, length).in(inGpa, length), slot)) {
                        freeSlots[freeCount++] = slot; // ring full: the slot is refilled next time
                        break;
                    }
                    sentCrc.update(out.asByteBuffer());
                    bytesSent += length;
                    submitted++;
                    added = true;
                }
                if (added && driver.kickPrepare()) {
                    kicks++;
                    Linux.eventfdWrite(kickFd, 1);
                }
                checkBroken();
                if (reapAll() == 0 && driver.enableCallbacks()) {
                    // Nothing used and callbacks are on again with nothing pending: sleep until the device calls.
                    Linux.eventfdRead(callFd);
                }
                driver.disableCallbacks();
            }
        }

        private int reapAll() {
            return driver.reap((slot, lengthBytes) -> {
                long inGpa = 2L * slot * options.bufferBytes() + options.bufferBytes();
                receivedCrc.update(ram.asSlice(inGpa, lengthBytes).asByteBuffer());
                freeSlots[freeCount++] = slot;
                completed++;
            }, Integer.MAX_VALUE);
        }

        private void checkBroken() {
            if (driver.isBroken()) {
                throw new IllegalStateException("driver queue broken: " + driver.fault());
            }
        }
    }

    /** The device: pops each chain, checksums what it reads, fills what it may write. */
    private static final class DeviceSide implements Runnable {
        private final VirtqueueDevice device;
        private final int kickFd;
        private final int callFd;
        private final SplittableRandom random;
        private final CRC32C receivedCrc = new CRC32C();
        private final CRC32C sentCrc = new CRC32C();
        private final AtomicReference<Throwable> failure = new AtomicReference<>();
        private volatile boolean running = true;
        private long bytesSent;
        private long interrupts;

        DeviceSide(VirtqueueDevice device, int kickFd, int callFd, long seed) {
            this.device = device;
            this.kickFd = kickFd;
            this.callFd = callFd;
            this.random = new SplittableRandom(seed);
        }

        void stop() {
            running = false;
            Linux.eventfdWrite(kickFd, 1);
        }

        @Override
        public void run() {
            try {
                while (running) {
                    device.disableNotifications();
                    drain();
                    if (device.enableNotifications() && running) {
                        Linux.eventfdRead(kickFd); // ring empty with notifications on: sleep until kicked
                    }
                }
            } catch (Throwable t) {
                failure.set(t);
                Linux.eventfdWrite(callFd, 1); // wake the driver so it sees the failure
            }
        }

        private void drain() {
            DescriptorChain chain;
            while ((chain = device.pop()) != null) {
                for (int i = 0; i < chain.readableCount(); i++) {
                    receivedCrc.update(chain.readable(i).segment().asByteBuffer());
                }
                long written = 0;
                for (int i = 0; i < chain.writableCount(); i++) {
                    GuestRange range = chain.writable(i);
                    fillRandom(range.segment(), random);
                    sentCrc.update(range.segment().asByteBuffer());
                    written += range.lengthBytes();
                }
                bytesSent += written;
                device.pushUsed(chain, written);
                if (device.needsInterrupt()) {
                    interrupts++;
                    Linux.eventfdWrite(callFd, 1);
                }
            }
            if (device.isBroken()) {
                throw new IllegalStateException("device queue broken: " + device.fault());
            }
        }
    }
}
