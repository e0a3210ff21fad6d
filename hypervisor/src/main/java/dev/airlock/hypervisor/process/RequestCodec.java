package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.SendResult;
import dev.airlock.hypervisor.SharedRegionId;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmInfo;
import dev.airlock.hypervisor.VmRole;
import dev.airlock.hypervisor.VmSpec;

import java.util.List;

/**
 * Decodes the daemon's requests ({@link WireLayout}), applies them to the {@link DaemonState}, and
 * encodes the OK payloads. Every field is read once, range-checked, and the payload must end where
 * the request's fields end; anything else is a {@link ProtocolViolationException}.
 */
final class RequestCodec {
    private RequestCodec() {
    }

    static FrameChannel.Writer ok() {
        return new FrameChannel.Writer().u8(WireLayout.STATUS_OK);
    }

    static FrameChannel.Writer refusal(HypervisorRefusedException e) {
        return new FrameChannel.Writer().u8(WireLayout.STATUS_REFUSED).u8(e.reason().ordinal())
                .string(String.valueOf(e.getMessage()));
    }

    static VmId vmId(FrameChannel.Reader in) {
        int value = in.i32();
        if (value <= 0) {
            throw new ProtocolViolationException("vm id " + value + " is not positive");
        }
        return new VmId(value);
    }

    static <E extends Enum<E>> E enumValue(E[] values, int ordinal, String field) {
        if (ordinal >= values.length) {
            throw new ProtocolViolationException(field + " " + ordinal + " is out of range");
        }
        return values[ordinal];
    }

    static FrameChannel.Writer serveControl(DaemonState state, FrameChannel.Frame frame) {
        FrameChannel.Reader in = frame.payload();
        switch (frame.type()) {
            case WireLayout.CREATE_VM -> {
                String name = in.string();
                VmRole role = enumValue(VmRole.values(), in.u8(), "role");
                long ram = in.i64();
                long base = in.i64();
                in.end();
                DaemonState.Created created = state.createVm(new VmSpec(name, role, ram, base));
                return ok().i32(created.id().value()).raw(created.credential().bytes());
            }
            case WireLayout.START_VM, WireLayout.STOP_VM, WireLayout.DESTROY_VM, WireLayout.VM_INFO -> {
                VmId id = vmId(in);
                in.end();
                switch (frame.type()) {
                    case WireLayout.START_VM -> state.startVm(id);
                    case WireLayout.STOP_VM -> state.stopVm(id);
                    case WireLayout.DESTROY_VM -> state.destroyVm(id);
                    default -> {
                        return writeVm(ok(), state.vmInfo(id));
                    }
                }
                return ok();
            }
            case WireLayout.LIST_VMS -> {
                in.end();
                List<VmInfo> vms = state.listVms();
                FrameChannel.Writer out = ok().i32(vms.size());
                vms.forEach(vm -> writeVm(out, vm));
                return out;
            }
            case WireLayout.CREATE_REGION -> {
                VmId primary = vmId(in);
                VmId secondary = vmId(in);
                String name = in.string();
                long size = in.i64();
                long primaryBase = in.i64();
                long secondaryBase = in.i64();
                in.end();
                return ok().i64(state.createSharedRegion(primary, secondary, name, size, primaryBase, secondaryBase).id().value());
            }
            case WireLayout.DESTROY_REGION -> {
                long id = in.i64();
                in.end();
                if (id <= 0) {
                    throw new ProtocolViolationException("region id " + id + " is not positive");
                }
                state.destroySharedRegion(new SharedRegionId(id));
                return ok();
            }
            case WireLayout.LIST_REGIONS -> {
                in.end();
                List<SharedRegionInfo> regions = state.listSharedRegions();
                FrameChannel.Writer out = ok().i32(regions.size());
                for (SharedRegionInfo r : regions) {
                    out.i64(r.id().value()).string(r.name()).i64(r.sizeBytes()).i32(r.primary().value())
                            .i32(r.secondary().value()).i64(r.primaryGpaBase()).i64(r.secondaryGpaBase());
                }
                return out;
            }
            case WireLayout.CONNECT_QUEUES -> {
                VmId primary = vmId(in);
                VmId secondary = vmId(in);
                int depth = in.i32();
                in.end();
                state.connectMessageQueues(primary, secondary, depth);
                return ok();
            }
            case WireLayout.ASSIGN_BACKEND -> {
                VmId primary = vmId(in);
                VmId secondary = vmId(in);
                in.end();
                return ok().raw(state.assignBackend(primary, secondary).bytes());
            }
            case WireLayout.CONNECT_DOORBELLS -> {
                VmId primary = vmId(in);
                VmId secondary = vmId(in);
                in.end();
                state.connectDoorbells(primary, secondary);
                return ok();
            }
            default -> throw new ProtocolViolationException("request type " + frame.type() + " is not a control-plane request");
        }
    }

    static FrameChannel.Writer serveVm(DaemonState state, DaemonVm vm, DaemonBackend backend,
                                       FrameChannel.Frame frame) {
        FrameChannel.Reader in = frame.payload();
        switch (frame.type()) {
            case WireLayout.SEND -> {
                VmId peer = vmId(in);
                byte[] message = in.bytes(state.config.maxMessageBytes() + 1);
                in.end();
                SendResult result = state.send(vm, backend, peer, message);
                return ok().u8(result.ordinal());
            }
            case WireLayout.RECEIVE -> {
                VmId peer = vmId(in);
                in.end();
                byte[] message = state.receive(vm, backend, peer);
                return message == null ? ok().i32(-1) : ok().bytes(message, 0, message.length);
            }
            case WireLayout.CHECK_DOORBELL -> {
                VmId peer = vmId(in);
                int operation = in.u8();
                in.end();
                state.checkDoorbell(vm, backend, peer, operation == 0 ? "ring the doorbell of" : "use the doorbell from");
                return ok();
            }
            default -> throw new ProtocolViolationException("request type " + frame.type() + " is not a vm request");
        }
    }

    private static FrameChannel.Writer writeVm(FrameChannel.Writer out, VmInfo vm) {
        return out.i32(vm.id().value()).string(vm.name()).u8(vm.role().ordinal()).u8(vm.state().ordinal()).i64(vm.ramSizeBytes());
    }
}
