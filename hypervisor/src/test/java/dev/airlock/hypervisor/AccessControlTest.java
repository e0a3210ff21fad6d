package dev.airlock.hypervisor;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.lang.foreign.MemorySegment;

import static dev.airlock.hypervisor.TestSupport.RAM;
import static dev.airlock.hypervisor.TestSupport.World;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AccessControlTest {
    private final World world = new World().started();

    @AfterEach
    void close() {
        world.close();
    }

    private static HypervisorRefusedException refused(RefusalReason reason, Executable call) {
        HypervisorRefusedException e = assertThrows(HypervisorRefusedException.class, call);
        assertEquals(reason, e.reason(), e.getMessage());
        return e;
    }

    @Test
    void rejectsASecondaryTalkingToAnotherSecondary() {
        world.hypervisor.connectMessageQueues(world.hostId, world.guest2Id, 4);
        HypervisorRefusedException e = refused(RefusalReason.WRONG_VM, () -> world.guest1.sendMessage(world.guest2Id, new byte[1]));
        assertEquals("vm 'guest1' may not send to vm 'guest2': both are secondaries, and a secondary talks only to the primary",
                e.getMessage());
        refused(RefusalReason.WRONG_VM, () -> world.guest2.receiveMessage(world.guest1Id));
        refused(RefusalReason.WRONG_VM, () -> world.guest2.ringDoorbell(world.guest1Id, 1));
        refused(RefusalReason.WRONG_VM, () -> world.guest1.readAndClearDoorbell(world.guest2Id));
    }

    @Test
    void rejectsCallsToItself() {
        refused(RefusalReason.WRONG_VM, () -> world.host.sendMessage(world.hostId, new byte[1]));
        refused(RefusalReason.WRONG_VM, () -> world.guest1.ringDoorbell(world.guest1Id, 1));
    }

    @Test
    void rejectsCallsWithoutAGrant() {
        HypervisorRefusedException e = refused(RefusalReason.NOT_GRANTED, () -> world.guest2.sendMessage(world.hostId, new byte[1]));
        assertEquals("vm 'guest2' may not send to vm 'host': no message queue between them", e.getMessage());
        refused(RefusalReason.NOT_GRANTED, () -> world.host.receiveMessage(world.guest2Id));
        refused(RefusalReason.NOT_GRANTED, () -> world.host.ringDoorbell(world.guest2Id, 1));
        refused(RefusalReason.NOT_GRANTED, () -> world.host.maskDoorbell(world.guest2Id));
        refused(RefusalReason.NOT_GRANTED, () -> world.host.unmaskDoorbell(world.guest2Id));
        refused(RefusalReason.NOT_GRANTED, () -> world.host.readAndClearDoorbell(world.guest2Id));
    }

    @Test
    void rejectsDoorbellsWhereOnlyQueuesAreGranted() {
        world.hypervisor.connectMessageQueues(world.hostId, world.guest2Id, 4);
        assertEquals(SendResult.OK, world.guest2.sendMessage(world.hostId, new byte[] {1}));
        HypervisorRefusedException e = refused(RefusalReason.NOT_GRANTED, () -> world.guest2.ringDoorbell(world.hostId, 1));
        assertEquals("vm 'guest2' may not ring the doorbell of vm 'host': no doorbell between them", e.getMessage());
    }

    @Test
    void rejectsCallsToADestroyedPeerAsRevoked() {
        world.hypervisor.destroyVm(world.guest1Id);
        HypervisorRefusedException e = refused(RefusalReason.REVOKED, () -> world.host.sendMessage(world.guest1Id, new byte[1]));
        assertTrue(e.getMessage().startsWith("vm 'host' may not send to vm 'guest1'"), e.getMessage());
        refused(RefusalReason.REVOKED, () -> world.host.receiveMessage(world.guest1Id));
        refused(RefusalReason.REVOKED, () -> world.host.ringDoorbell(world.guest1Id, 1));
        refused(RefusalReason.REVOKED, () -> world.host.readAndClearDoorbell(world.guest1Id));
        assertTrue(world.host.peers().isEmpty());
    }

    @Test
    void rejectsCallsFromAStoppedVm() {
        world.hypervisor.stopVm(world.guest1Id);
        HypervisorRefusedException e = refused(RefusalReason.NOT_RUNNING, () -> world.guest1.sendMessage(world.hostId, new byte[1]));
        assertEquals("vm 'guest1' may not send to vm 'host': vm 'guest1' is STOPPED", e.getMessage());
        refused(RefusalReason.NOT_RUNNING, () -> world.guest1.ringDoorbell(world.hostId, 1));
        refused(RefusalReason.NOT_RUNNING, () -> world.guest1.receiveMessage(world.hostId));
        world.hypervisor.startVm(world.guest1Id);
        assertEquals(SendResult.OK, world.guest1.sendMessage(world.hostId, new byte[1]));
    }

    @Test
    void rejectsCallsFromAVmNotYetStartedOrDestroyed() {
        VmId late = world.hypervisor.createVm(VmSpec.secondary("late", RAM));
        world.hypervisor.connectMessageQueues(world.hostId, late, 2);
        VmContext context = world.hypervisor.context(late);
        refused(RefusalReason.NOT_RUNNING, () -> context.sendMessage(world.hostId, new byte[1]));
        world.hypervisor.destroyVm(late);
        HypervisorRefusedException e = refused(RefusalReason.NOT_RUNNING, () -> context.sendMessage(world.hostId, new byte[1]));
        assertTrue(e.getMessage().endsWith("is DESTROYED"), e.getMessage());
    }

    @Test
    void rejectsAnOversizedMessage() {
        HypervisorRefusedException e = refused(RefusalReason.MESSAGE_TOO_LARGE,
                () -> world.guest1.sendMessage(world.hostId, new byte[241]));
        assertEquals("vm 'guest1' may not send 241 bytes to vm 'host': messages are at most 240 bytes", e.getMessage());
        assertEquals(SendResult.OK, world.guest1.sendMessage(world.hostId, new byte[240]));
    }

    @Test
    void rejectsAnUnknownVmId() {
        VmId unknown = new VmId(999);
        HypervisorRefusedException e = refused(RefusalReason.NO_SUCH_VM, () -> world.guest1.sendMessage(unknown, new byte[1]));
        assertEquals("vm 'guest1' may not send to vm#999: no such vm", e.getMessage());
        refused(RefusalReason.NO_SUCH_VM, () -> world.hypervisor.startVm(unknown));
        refused(RefusalReason.NO_SUCH_VM, () -> world.hypervisor.context(unknown));
        refused(RefusalReason.NO_SUCH_VM, () -> world.hypervisor.connectDoorbells(world.hostId, unknown));
    }

    @Test
    void rejectsASecondPrimaryAndATakenName() {
        refused(RefusalReason.CONFLICT, () -> world.hypervisor.createVm(VmSpec.primary("host2", RAM)));
        refused(RefusalReason.CONFLICT, () -> world.hypervisor.createVm(VmSpec.secondary("guest1", RAM)));
    }

    @Test
    void rejectsConnectingTwoSecondariesOrTheSamePairTwice() {
        refused(RefusalReason.WRONG_VM, () -> world.hypervisor.connectMessageQueues(world.guest1Id, world.guest2Id, 4));
        refused(RefusalReason.WRONG_VM, () -> world.hypervisor.connectDoorbells(world.guest1Id, world.hostId));
        refused(RefusalReason.WRONG_VM, () -> world.hypervisor.createSharedRegion(world.guest1Id, world.guest2Id, "x", 4096, 0x10000000L, 0x10000000L));
        refused(RefusalReason.CONFLICT, () -> world.hypervisor.connectMessageQueues(world.hostId, world.guest1Id, 4));
        refused(RefusalReason.CONFLICT, () -> world.hypervisor.connectDoorbells(world.hostId, world.guest1Id));
    }

    @Test
    void rejectsMalformedArgumentsAsProgrammingErrors() {
        assertThrows(IllegalArgumentException.class, () -> world.guest1.ringDoorbell(world.hostId, 0));
        assertThrows(IllegalArgumentException.class, () -> world.hypervisor.connectMessageQueues(world.hostId, world.guest2Id, 1));
        assertThrows(IllegalArgumentException.class, () -> world.guest1.receiveMessage(world.hostId, MemorySegment.ofArray(new byte[10])));
        assertThrows(IllegalArgumentException.class, () -> VmSpec.secondary("bad name", RAM));
        assertThrows(IllegalArgumentException.class, () -> world.hypervisor.createSharedRegion(world.hostId, world.guest1Id, "x", 100, 0, 0));
        assertThrows(NullPointerException.class, () -> world.guest1.sendMessage(null, new byte[1]));
        try (InProcessHypervisor big = new InProcessHypervisor(new HypervisorConfig(65_536))) {
            VmId host = big.createVm(VmSpec.primary("host", RAM));
            VmId guest = big.createVm(VmSpec.secondary("guest", RAM));
            assertThrows(IllegalArgumentException.class, () -> big.connectMessageQueues(host, guest, 2048), "128 MiB per direction");
        }
    }

    @Test
    void rejectsControlPlaneCallsAfterClose() {
        world.hypervisor.close();
        assertThrows(IllegalStateException.class, () -> world.hypervisor.createVm(VmSpec.secondary("after", RAM)));
        assertTrue(world.hypervisor.listVms().isEmpty());
        refused(RefusalReason.NOT_RUNNING, () -> world.guest1.sendMessage(world.hostId, new byte[1]));
    }
}
