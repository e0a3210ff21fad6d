package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.InterruptCause;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmState;

/**
 * The events the daemon queues to VM and backend processes. Called under the {@link DaemonState}
 * lock; each event is queued on a connection (never sent under the lock).
 */
final class DaemonEvents {
    private DaemonEvents() {
    }

    /** The connection that receives what {@code vm} gets about {@code about}: its backend's, if any. */
    static DaemonConnection connectionFor(DaemonVm vm, VmId about) {
        DaemonBackend backend = vm.backends.get(about);
        return backend != null ? backend.connection : vm.connection;
    }

    /** Hands a region's memfd to one side, if the process that receives it is attached. */
    static void grantRegion(DaemonState.RegionEntry region, DaemonVm vm) {
        SharedRegionInfo info = region.info();
        boolean primary = info.primary().equals(vm.id);
        DaemonConnection connection = connectionFor(vm, primary ? info.secondary() : info.primary());
        if (connection == null) {
            return; // handed over when the VM (or backend) process attaches
        }
        connection.event(WireLayout.REGION_GRANTED, new FrameChannel.Writer().i64(info.id().value())
                        .i32((primary ? info.secondary() : info.primary()).value()).string(info.name()).i64(info.sizeBytes())
                        .i64(primary ? info.primaryGpaBase() : info.secondaryGpaBase()),
                region.memfd());
    }

    /** Hands the doorbell page and both eventfds to one side: page, toward this VM, toward the peer. */
    static void grantDoorbells(DaemonPair pair, DaemonVm vm) {
        DaemonConnection connection = connectionFor(vm, pair.other(vm).id);
        if (connection == null || pair.doorbellPage == null || pair.revoked) {
            return;
        }
        boolean primary = vm == pair.primary;
        connection.event(WireLayout.DOORBELL_GRANTED, new FrameChannel.Writer().i32(pair.other(vm).id.value()),
                pair.doorbellPage, primary ? pair.eventToPrimary : pair.eventToSecondary,
                primary ? pair.eventToSecondary : pair.eventToPrimary);
    }

    /** Tells one side that a grant now connects it with {@code peer}. */
    static void linked(DaemonVm vm, DaemonVm peer) {
        DaemonConnection connection = connectionFor(vm, peer.id);
        if (connection != null) {
            connection.event(WireLayout.LINKED, new FrameChannel.Writer().i32(peer.id.value()));
        }
    }

    /** Raises an interrupt about {@code about} in the process of {@code target} that handles that peer. */
    static void interrupt(DaemonVm target, InterruptCause cause, VmId about) {
        DaemonConnection connection = connectionFor(target, about);
        if (connection != null && target.state != VmState.DESTROYED) {
            connection.event(WireLayout.INTERRUPT, new FrameChannel.Writer().u8(cause.ordinal()).i32(about.value()));
        }
    }
}
