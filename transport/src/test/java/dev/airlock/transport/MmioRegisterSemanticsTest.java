package dev.airlock.transport;

import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.VirtioFeatures;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;

import static dev.airlock.transport.MmioRegisters.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/** The virtio-mmio register semantics of VIRTIO 1.2 §4.2.2 as seen through msgq-mmio. */
class MmioRegisterSemanticsTest {
    private final TransportWorld world = new TransportWorld();

    @AfterEach
    void close() {
        world.close();
    }

    private static int value(long read) {
        assertEquals(TransportStatus.OK, (int) (read >>> 32), "status of the read");
        return (int) read;
    }

    @Test
    void shouldShowInterruptStatusUntilAcknowledgedAndFixQueueRegistersWhileReady() throws InterruptedException {
        TransportWorld.Echo echo = world.echo(TransportKind.MSGQ_MMIO, world.guest("guest1", Duration.ofSeconds(2)), 0);
        MmioDriverTransport t = (MmioDriverTransport) echo.transport();
        assertEquals(MAGIC_VALUE, value(t.readRegister(MAGIC_VALUE_OFFSET)));
        assertEquals(VERSION, value(t.readRegister(VERSION_OFFSET)));
        assertEquals(VENDOR_ID, value(t.readRegister(VENDOR_ID_OFFSET)));
        assertEquals(-1, value(t.readRegister(SHM_LEN_LOW_OFFSET)), "no shared memory regions");
        assertEquals(TransportStatus.OK, t.writeRegister(DEVICE_FEATURES_SEL_OFFSET, 7));
        assertEquals(0, value(t.readRegister(DEVICE_FEATURES_OFFSET)), "feature words above 1 are 0");

        echo.frontend().initialize(EchoDevice.DEVICE_ID, VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1), 16);
        echo.driver().run(10, 1, 16, 9);
        assertEquals(VIRTIO_MMIO_INT_VRING, value(t.readRegister(INTERRUPT_STATUS_OFFSET)) & VIRTIO_MMIO_INT_VRING);
        assertEquals(TransportStatus.OK, t.writeRegister(INTERRUPT_ACK_OFFSET, VIRTIO_MMIO_INT_VRING));
        assertEquals(0, value(t.readRegister(INTERRUPT_STATUS_OFFSET)) & VIRTIO_MMIO_INT_VRING, "acknowledged");

        int generation = value(t.readRegister(CONFIG_GENERATION_OFFSET));
        echo.device().setLabel(5);
        assertNotEquals(generation, value(t.readRegister(CONFIG_GENERATION_OFFSET)));
        assertEquals(VIRTIO_MMIO_INT_CONFIG, value(t.readRegister(INTERRUPT_STATUS_OFFSET)) & VIRTIO_MMIO_INT_CONFIG);

        assertEquals(TransportStatus.OK, t.writeRegister(QUEUE_SEL_OFFSET, 0));
        assertEquals(1, value(t.readRegister(QUEUE_READY_OFFSET)));
        assertEquals(TransportStatus.REJECTED, t.writeRegister(QUEUE_NUM_OFFSET, 8), "fixed while ready");
        assertEquals(TransportStatus.REJECTED, t.writeRegister(QUEUE_DESC_LOW_OFFSET, 0), "fixed while ready");
        assertEquals(TransportStatus.REJECTED, t.writeRegister(QUEUE_READY_OFFSET, 0), "no queue reset without RING_RESET");
        assertEquals(TransportStatus.REJECTED, t.writeRegister(DRIVER_FEATURES_OFFSET, 0), "after FEATURES_OK");
        assertEquals(TransportStatus.REJECTED, t.writeRegister(STATUS_OFFSET, DeviceStatus.ACKNOWLEDGE), "clearing bits");
        echo.driver().run(100, 4, 64, 10);

        assertEquals(TransportStatus.OK, t.writeRegister(STATUS_OFFSET, 0));
        assertEquals(0, value(t.readRegister(STATUS_OFFSET)));
        assertEquals(0, value(t.readRegister(QUEUE_READY_OFFSET)), "QueueReady is 0 after reset");
        assertEquals(0, value(t.readRegister(INTERRUPT_STATUS_OFFSET)));
    }
}
