package dev.airlock.devices.blk;

import dev.airlock.devices.DeviceWorld;
import dev.airlock.transport.DeviceContext;
import dev.airlock.transport.TransportKind;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtqueueDevice;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * One in-process world (a primary serving block devices, a secondary driving them) for end-to-end
 * tests. The secondary's private RAM (4 MiB at gpa 0) holds data buffers below {@link #IO_AREA_GPA}
 * and the block devices' I/O areas above it.
 */
final class BlkHarness implements AutoCloseable {
    static final long IO_AREA_GPA = 2L << 20;
    static final long IO_AREA_BYTES = 1L << 20;
    static final long DATA_BYTES = IO_AREA_GPA;

    final DeviceWorld world = new DeviceWorld();
    final DeviceWorld.Guest guest = world.guest("guest1");
    private final List<AutoCloseable> closeables = new ArrayList<>();
    private int slot;

    /** A device model that can hold back queue notifications and inject a fault, around a real one. */
    static final class Faultable implements VirtioDeviceModel, AutoCloseable {
        final VirtioDeviceModel inner;
        private final Set<Integer> heldKicks = ConcurrentHashMap.newKeySet();
        private volatile boolean holding;
        private volatile DeviceContext context;
        private boolean active;

        Faultable(VirtioDeviceModel inner) {
            this.inner = inner;
        }

        /** From now on, notifications are recorded and not passed on (requests stay in the rings). */
        void hold() {
            holding = true;
        }

        int heldKicks() {
            return heldKicks.size();
        }

        /** The device reports a protocol fault: DEVICE_NEEDS_RESET. */
        void fault() {
            context.reportFault(new VirtioFault(context.name(), "test", 0, "injected fault"));
        }

        /** Reports a fault if the device is active (between activation and reset); returns whether it did. */
        synchronized boolean faultIfActive() {
            if (!active) {
                return false;
            }
            active = false; // one fault per activation: the next waits for the driver's reset
            fault();
            return true;
        }

        @Override
        public int deviceId() {
            return inner.deviceId();
        }

        @Override
        public long deviceFeatures() {
            return inner.deviceFeatures();
        }

        @Override
        public boolean acceptFeatures(long driverFeatures) {
            return inner.acceptFeatures(driverFeatures);
        }

        @Override
        public int queueCount() {
            return inner.queueCount();
        }

        @Override
        public int maxQueueSize(int queue) {
            return inner.maxQueueSize(queue);
        }

        @Override
        public int configSizeBytes() {
            return inner.configSizeBytes();
        }

        @Override
        public long readConfig(int offset, int sizeBytes) {
            return inner.readConfig(offset, sizeBytes);
        }

        @Override
        public boolean writeConfig(int offset, int sizeBytes, long value) {
            return inner.writeConfig(offset, sizeBytes, value);
        }

        @Override
        public void activate(DeviceContext ctx, long negotiatedFeatures, List<VirtqueueDevice> queues) {
            context = ctx;
            inner.activate(ctx, negotiatedFeatures, queues);
            synchronized (this) {
                active = true;
            }
        }

        @Override
        public void queueNotified(int queue) {
            if (holding) {
                heldKicks.add(queue);
                return;
            }
            inner.queueNotified(queue);
        }

        @Override
        public void close() throws Exception {
            if (inner instanceof AutoCloseable c) {
                c.close();
            }
        }

        @Override
        public void reset() {
            synchronized (this) {
                active = false;
            }
            holding = false;
            heldKicks.clear();
            inner.reset();
        }
    }

    /** Creates an image of {@code bytes} filled with a pattern derived from {@code seed} (0: zeros, sparse). */
    static Path image(Path dir, String name, long bytes, long seed) throws IOException {
        Path file = dir.resolve(name);
        if (seed == 0) {
            try (var raf = new java.io.RandomAccessFile(file.toFile(), "rw")) {
                raf.setLength(bytes);
            }
        } else {
            byte[] data = new byte[(int) bytes];
            new java.util.SplittableRandom(seed).nextBytes(data);
            Files.write(file, data);
        }
        return file;
    }

    /** Serves {@code model} on the next slot and returns the guest's frontend. */
    VirtioFrontend attach(TransportKind kind, VirtioDeviceModel model) {
        return world.attach(kind, guest, slot++, model);
    }

    /** Serves a block device and opens the driver with the default options over the I/O area. */
    BlockDevice open(TransportKind kind, BlkDevice device) throws IOException {
        return open(kind, device, BlockDeviceOptions.of(IO_AREA_GPA + IO_AREA_BYTES * (slot), IO_AREA_BYTES));
    }

    BlockDevice open(TransportKind kind, VirtioDeviceModel model, BlockDeviceOptions options) throws IOException {
        if (model instanceof AutoCloseable c) {
            closeables.add(c);
        }
        VirtioFrontend fe = attach(kind, model);
        BlockDevice blk = BlockDevice.open(fe, guest.vm().addressSpace(), options);
        closeables.add(blk);
        return blk;
    }

    /** Private RAM of the guest. */
    MemorySegment ram(long gpa, long lengthBytes) {
        return guest.vm().addressSpace().translate(gpa, lengthBytes);
    }

    static String ascii(byte[] b) {
        return new String(b, StandardCharsets.US_ASCII);
    }

    @Override
    public void close() {
        for (AutoCloseable c : closeables.reversed()) {
            if (c instanceof BlockDevice b) {
                b.close();
            }
        }
        world.close();
        for (AutoCloseable c : closeables.reversed()) {
            try {
                if (!(c instanceof BlockDevice)) {
                    c.close();
                }
            } catch (Exception ignored) {
                // best effort
            }
        }
    }
}
