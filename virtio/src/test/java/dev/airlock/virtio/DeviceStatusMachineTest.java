package dev.airlock.virtio;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static dev.airlock.virtio.DeviceStatus.ACKNOWLEDGE;
import static dev.airlock.virtio.DeviceStatus.DEVICE_NEEDS_RESET;
import static dev.airlock.virtio.DeviceStatus.DRIVER;
import static dev.airlock.virtio.DeviceStatus.DRIVER_OK;
import static dev.airlock.virtio.DeviceStatus.FAILED;
import static dev.airlock.virtio.DeviceStatus.FEATURES_OK;
import static dev.airlock.virtio.DeviceStatusMachine.WriteResult.ACCEPTED;
import static dev.airlock.virtio.DeviceStatusMachine.WriteResult.FEATURES_NOT_ACCEPTED;
import static dev.airlock.virtio.DeviceStatusMachine.WriteResult.REJECTED;
import static dev.airlock.virtio.DeviceStatusMachine.WriteResult.RESET;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DeviceStatusMachineTest {
    private static final long OFFERED = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX,
            VirtioFeatures.VIRTIO_F_INDIRECT_DESC, 0);
    private static final long ACCEPTED_FEATURES = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX);

    private final List<String> events = new ArrayList<>();
    private boolean acceptCombination = true;
    private final DeviceStatusMachine machine = new DeviceStatusMachine("blk0", OFFERED, new DeviceStatusMachine.Listener() {
        @Override
        public boolean acceptFeatures(long driverFeatures) {
            return acceptCombination;
        }

        @Override
        public void onDriverOk(long negotiatedFeatures) {
            events.add("driver-ok " + VirtioFeatures.describe(negotiatedFeatures));
        }

        @Override
        public void onReset() {
            events.add("reset");
        }
    });

    private void initUpToDriver() {
        assertEquals(ACCEPTED, machine.writeStatus(ACKNOWLEDGE));
        assertEquals(ACCEPTED, machine.writeStatus(ACKNOWLEDGE | DRIVER));
    }

    @Test
    void shouldFollowTheInitializationSequence() {
        initUpToDriver();
        assertTrue(machine.writeDriverFeatures(ACCEPTED_FEATURES));
        assertEquals(ACCEPTED, machine.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK));
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK, machine.status());
        assertEquals(ACCEPTED_FEATURES, machine.negotiatedFeatures());
        assertEquals(ACCEPTED, machine.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK));
        assertTrue(machine.isDriverOk());
        assertEquals(List.of("driver-ok EVENT_IDX|VERSION_1"), events);
        assertNull(machine.lastFault());
    }

    @Test
    void shouldAcceptFeaturesWordByWord() {
        initUpToDriver();
        assertEquals((int) OFFERED, machine.deviceFeaturesWord(0));
        assertEquals(1, machine.deviceFeaturesWord(1));
        assertEquals(0, machine.deviceFeaturesWord(2));
        assertTrue(machine.writeDriverFeaturesWord(0, 1 << VirtioFeatures.VIRTIO_F_EVENT_IDX));
        assertTrue(machine.writeDriverFeaturesWord(1, 1));
        assertEquals(ACCEPTED_FEATURES, machine.driverFeatures());
        assertEquals(ACCEPTED, machine.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK));
    }

    @Test
    void rejectsBitsOutOfOrder() {
        assertEquals(REJECTED, machine.writeStatus(DRIVER));
        assertEquals(0, machine.status());
        assertEquals("status", machine.lastFault().field());
        machine.writeStatus(ACKNOWLEDGE);
        assertEquals(REJECTED, machine.writeStatus(ACKNOWLEDGE | FEATURES_OK));
        assertEquals(ACKNOWLEDGE, machine.status());
        machine.writeStatus(ACKNOWLEDGE | DRIVER);
        assertEquals(REJECTED, machine.writeStatus(ACKNOWLEDGE | DRIVER | DRIVER_OK));
        assertEquals(ACKNOWLEDGE | DRIVER, machine.status());
        assertTrue(events.isEmpty());
    }

    @Test
    void rejectsClearingBits() {
        initUpToDriver();
        assertEquals(REJECTED, machine.writeStatus(ACKNOWLEDGE));
        assertEquals(ACKNOWLEDGE | DRIVER, machine.status());
        assertTrue(machine.lastFault().reason().contains("clears DRIVER"));
    }

    @Test
    void rejectsReservedStatusBits() {
        assertEquals(REJECTED, machine.writeStatus(ACKNOWLEDGE | 0x10));
        assertEquals(REJECTED, machine.writeStatus(0x100 | ACKNOWLEDGE));
        assertEquals(0, machine.status());
    }

    @Test
    void shouldAcceptSeveralInOrderBitsInOneWrite() {
        assertEquals(ACCEPTED, machine.writeStatus(ACKNOWLEDGE | DRIVER));
        assertEquals(ACKNOWLEDGE | DRIVER, machine.status());
    }

    @Test
    void rejectsAFeatureTheDeviceDidNotOfferByNotKeepingFeaturesOk() {
        initUpToDriver();
        long unoffered = ACCEPTED_FEATURES | VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_RING_PACKED);
        assertTrue(machine.writeDriverFeatures(unoffered));
        assertEquals(FEATURES_NOT_ACCEPTED, machine.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK));
        // §3.1.1: the driver re-reads the status and sees FEATURES_OK clear.
        assertEquals(ACKNOWLEDGE | DRIVER, machine.status());
        assertEquals("driver_features", machine.lastFault().field());
        assertTrue(machine.lastFault().reason().contains("RING_PACKED"));
        assertEquals(0, machine.negotiatedFeatures());
        assertEquals(REJECTED, machine.writeStatus(ACKNOWLEDGE | DRIVER | DRIVER_OK));
    }

    @Test
    void rejectsAFeatureWordAbove63() {
        initUpToDriver();
        machine.writeDriverFeatures(ACCEPTED_FEATURES);
        assertTrue(machine.writeDriverFeaturesWord(2, 1));
        assertEquals(FEATURES_NOT_ACCEPTED, machine.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK));
    }

    @Test
    void rejectsFeaturesWithoutVersion1() {
        initUpToDriver();
        machine.writeDriverFeatures(VirtioFeatures.bit(VirtioFeatures.VIRTIO_F_EVENT_IDX));
        assertEquals(FEATURES_NOT_ACCEPTED, machine.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK));
        assertEquals(ACKNOWLEDGE | DRIVER, machine.status());
        assertTrue(events.isEmpty());
    }

    @Test
    void rejectsAFeatureCombinationTheDeviceRefuses() {
        initUpToDriver();
        acceptCombination = false;
        machine.writeDriverFeatures(ACCEPTED_FEATURES);
        assertEquals(FEATURES_NOT_ACCEPTED, machine.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK));
    }

    @Test
    void rejectsFeatureWritesOutsideTheWindow() {
        assertFalse(machine.writeDriverFeatures(ACCEPTED_FEATURES), "before DRIVER");
        machine.writeStatus(ACKNOWLEDGE);
        assertFalse(machine.writeDriverFeaturesWord(0, 1), "before DRIVER");
        machine.writeStatus(ACKNOWLEDGE | DRIVER);
        machine.writeDriverFeatures(ACCEPTED_FEATURES);
        machine.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK);
        assertFalse(machine.writeDriverFeatures(OFFERED), "frozen after FEATURES_OK");
        assertFalse(machine.writeDriverFeaturesWord(1, 0), "frozen after FEATURES_OK");
        assertEquals(ACCEPTED_FEATURES, machine.driverFeatures());
        assertEquals(ACCEPTED_FEATURES, machine.negotiatedFeatures());
        assertEquals("driver_features", machine.lastFault().field());
    }

    @Test
    void shouldResetEverythingOnZero() {
        initUpToDriver();
        machine.writeDriverFeatures(ACCEPTED_FEATURES);
        machine.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        machine.setNeedsReset(new VirtioFault("blk0.requestq", "avail.idx", 999, "test"));
        assertEquals(RESET, machine.writeStatus(0));
        assertEquals(0, machine.status());
        assertEquals(0, machine.driverFeatures());
        assertEquals(0, machine.negotiatedFeatures());
        assertNull(machine.lastFault());
        assertEquals("reset", events.getLast());
        // And the sequence can run again.
        initUpToDriver();
        machine.writeDriverFeatures(ACCEPTED_FEATURES);
        assertEquals(ACCEPTED, machine.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK));
    }

    @Test
    void shouldShowNeedsResetToTheDriver() {
        initUpToDriver();
        VirtioFault cause = new VirtioFault("blk0.requestq", "desc[3].next", 300, ">= queue size 256");
        assertFalse(machine.setNeedsReset(cause), "no config change notification before DRIVER_OK");
        assertEquals(ACKNOWLEDGE | DRIVER | DEVICE_NEEDS_RESET, machine.status());
        assertEquals(cause, machine.lastFault());
        // The driver writes back what it read plus a bit: the device's bit is kept, not the driver's.
        machine.writeDriverFeatures(ACCEPTED_FEATURES);
        assertEquals(ACCEPTED, machine.writeStatus(ACKNOWLEDGE | DRIVER | DEVICE_NEEDS_RESET | FEATURES_OK));
        assertEquals(ACKNOWLEDGE | DRIVER | FEATURES_OK | DEVICE_NEEDS_RESET, machine.status());
        machine.writeStatus(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        assertTrue(machine.setNeedsReset(cause), "DRIVER_OK set: the transport must notify a config change");
    }

    @Test
    void shouldAcceptFailedAtAnyTimeAndThenOnlyReset() {
        machine.writeStatus(ACKNOWLEDGE);
        assertEquals(ACCEPTED, machine.writeStatus(ACKNOWLEDGE | FAILED));
        assertEquals(ACKNOWLEDGE | FAILED, machine.status());
        assertEquals(REJECTED, machine.writeStatus(ACKNOWLEDGE | FAILED | DRIVER));
        assertFalse(machine.writeDriverFeatures(ACCEPTED_FEATURES));
        assertEquals(RESET, machine.writeStatus(0));
    }

    @Test
    void rejectsADeviceWithoutVersion1() {
        assertThrows(IllegalArgumentException.class, () -> new DeviceStatusMachine("legacy", 1, null));
    }

    @Test
    void shouldDescribeStatusBits() {
        assertEquals("RESET", DeviceStatus.describe(0));
        assertEquals("ACKNOWLEDGE|DRIVER|FEATURES_OK|DEVICE_NEEDS_RESET", DeviceStatus.describe(ACKNOWLEDGE | DRIVER | FEATURES_OK | DEVICE_NEEDS_RESET));
        assertEquals("0x10", DeviceStatus.describe(0x10));
    }
}
