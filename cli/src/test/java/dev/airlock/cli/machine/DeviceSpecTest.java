package dev.airlock.cli.machine;

import dev.airlock.transport.TransportKind;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DeviceSpecTest {
    @Test
    void shouldParseTypeOptionsAndCommonKeys() {
        DeviceSpec d = DeviceSpec.parse("blk:image=/tmp/d.raw,ro,slot=3,transport=shmem-doorbell,region=64M", 0, TransportKind.MSGQ_MMIO);
        assertEquals(DeviceSpec.DeviceType.BLK, d.type());
        assertEquals(3, d.slot());
        assertEquals(TransportKind.SHMEM_DOORBELL, d.transport());
        assertEquals(64L << 20, d.regionBytes());
        assertEquals("/tmp/d.raw", d.option("image", null));
        assertTrue(d.flag("ro"));
        assertEquals(2, d.options().size(), "common keys are not type options");
    }

    @Test
    void shouldRoundTripThroughTheRegionName() {
        DeviceSpec d = DeviceSpec.parse("console", 5, TransportKind.SHMEM_DOORBELL);
        String name = d.regionName("guest1");
        assertEquals("guest1.5.console.shmem-doorbell", name);
        DeviceSpec back = DeviceSpec.fromRegionName("guest1", name, d.regionBytes());
        assertEquals(d.type(), back.type());
        assertEquals(d.slot(), back.slot());
        assertEquals(d.transport(), back.transport());
        assertNull(DeviceSpec.fromRegionName("guest2", name, d.regionBytes()), "another VM's region");
        assertNull(DeviceSpec.fromRegionName("guest1", "guest1.x.console.msgq-mmio", 1 << 20), "not a slot");
        assertNull(DeviceSpec.fromRegionName("guest1", "guest1.0.toaster.msgq-mmio", 1 << 20), "not a device type");
    }

    @Test
    void rejectsWhatItDoesNotKnowWithTheReason() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DeviceSpec.parse("gpu", 0, TransportKind.MSGQ_MMIO))
                .getMessage().contains("unknown device type 'gpu'"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DeviceSpec.parse("rng:image=x", 0, TransportKind.MSGQ_MMIO))
                .getMessage().contains("unknown option 'image'"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DeviceSpec.parse("rng:slot=8", 0, TransportKind.MSGQ_MMIO))
                .getMessage().contains("slot 8"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DeviceSpec.parse("rng:region=1K", 0, TransportKind.MSGQ_MMIO))
                .getMessage().contains("at least 256 KiB"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DeviceSpec.parse("blk:ro,ro", 0, TransportKind.MSGQ_MMIO))
                .getMessage().contains("given twice"));
    }

    @Test
    void rejectsVhostUserAsAHypervisorTransport() {
        String hint = "vhost-user is not a hypervisor transport; use vm run --device blk,vhost-user=SOCKET";
        assertEquals(hint, assertThrows(IllegalArgumentException.class,
                () -> DeviceSpec.parse("blk:image=d.raw,transport=vhost-user", 0, TransportKind.MSGQ_MMIO)).getMessage());
        assertEquals(hint, assertThrows(IllegalArgumentException.class, () -> DeviceSpec.transport("vhost-user")).getMessage());
        assertEquals(hint, assertThrows(IllegalArgumentException.class,
                () -> DeviceSpec.parse("rng", 0, TransportKind.VHOST_USER)).getMessage(), "nor as the default transport");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DeviceSpec.transport("pigeon")).getMessage()
                .contains("(msgq-mmio, shmem-doorbell)"));
    }

    @Test
    void shouldParseAndFormatSizes() {
        assertEquals(4096, ByteSize.parse("4096"));
        assertEquals(64L << 10, ByteSize.parse("64K"));
        assertEquals(16L << 20, ByteSize.parse("16MiB"));
        assertEquals(1L << 30, ByteSize.parse("1g"));
        assertThrows(IllegalArgumentException.class, () -> ByteSize.parse("lots"));
        assertThrows(IllegalArgumentException.class, () -> ByteSize.parse("99999999999T"));
        assertEquals("64 MiB", ByteSize.format(64L << 20));
        assertEquals("1.5 KiB", ByteSize.human(1536));
    }
}
