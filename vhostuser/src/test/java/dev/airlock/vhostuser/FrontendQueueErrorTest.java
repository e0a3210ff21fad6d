package dev.airlock.vhostuser;

import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.memory.SharedMemory;
import dev.airlock.transport.DriverTransport;
import dev.airlock.virtio.DeviceStatus;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * SET_VRING_ERR: Airlock's backend signals a queue's err eventfd when the driver's ring is bad; the
 * frontend transport turns that into DEVICE_NEEDS_RESET and a configuration-change interrupt, and a
 * reset clears it. The ring is written by hand here: Airlock's own driver never makes a bad one.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class FrontendQueueErrorTest {
    private static final long GPA = 0x8000_0000L;
    private static final int SIZE = 16;
    private static final long AVAIL_OFFSET = 4096;
    private static final long USED_OFFSET = 8192;

    @TempDir
    Path dir;

    @Test
    void shouldSetNeedsResetWhenTheBackendReportsAQueueError() throws Exception {
        Path image = Qsd.image(dir.resolve("disk.raw"), 16L << 20);
        Path socket = dir.resolve("err.sock");
        AtomicInteger configChanges = new AtomicInteger();
        try (VhostUserBackend backend = VhostUserBackend.serve(socket, () -> BlkBackendMain.openBlk(image));
             SharedMemory shared = SharedMemory.create("err", 1 << 20);
             VhostUserDriverTransport t = VhostUserDriverTransport.connect(socket, BlkDevice.DEVICE_ID,
                     FrontendVm.BLK_CONFIG_LENGTH, shared, GPA, Duration.ofSeconds(5))) {
            t.setListener(new DriverTransport.Listener() {
                @Override
                public void onUsedBuffers() {
                }

                @Override
                public void onConfigChange() {
                    configChanges.incrementAndGet();
                }
            });
            start(t);
            MemorySegment ring = shared.segment();
            ring.set(ValueLayout.JAVA_SHORT, AVAIL_OFFSET + 4, (short) (SIZE + 83)); // avail ring[0]: a head past the table
            ring.set(ValueLayout.JAVA_SHORT, AVAIL_OFFSET + 2, (short) 1); // avail idx
            t.notifyQueue(0);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while ((t.status() & DeviceStatus.DEVICE_NEEDS_RESET) == 0 && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertTrue((t.status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0, "no NEEDS_RESET; status 0x" + Integer.toHexString(t.status()));
            assertEquals(1, configChanges.get());
            assertFalse(t.isBroken());

            t.writeStatus(0); // the reset clears it, and the device works again
            assertEquals(0, t.status());
            ring.fill((byte) 0);
            start(t);
            assertEquals(0, t.status() & DeviceStatus.DEVICE_NEEDS_RESET);
        }
    }

    private static void start(VhostUserDriverTransport t) {
        t.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER);
        t.writeDriverFeatures(1L << 32); // VIRTIO_F_VERSION_1
        t.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK);
        assertTrue(t.enableQueue(0, SIZE, GPA, GPA + AVAIL_OFFSET, GPA + USED_OFFSET));
        t.writeStatus(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.FEATURES_OK | DeviceStatus.DRIVER_OK);
        assertTrue((t.status() & DeviceStatus.DRIVER_OK) != 0, "DRIVER_OK refused");
    }
}
