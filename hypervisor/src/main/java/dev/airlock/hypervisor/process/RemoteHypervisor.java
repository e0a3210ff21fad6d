package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.Hypervisor;
import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.SharedRegionId;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmInfo;
import dev.airlock.hypervisor.VmRole;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.VmState;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The control plane of the multi-process runtime: a client of a {@link HypervisorDaemon}. Each call
 * is one request on the daemon's socket; refusals come back as {@link HypervisorRefusedException}s
 * with the daemon's reason and message, malformed arguments as {@link IllegalArgumentException}s.
 *
 * <p>{@link #createVm} also receives the VM's credential, which the VM process needs to attach
 * ({@link #credential}). {@link #close()} destroys every VM, as the {@link Hypervisor} contract
 * says; {@link #disconnect()} only ends this client's connection.
 */
public final class RemoteHypervisor implements Hypervisor {
    private final ClientChannel channel;
    private final HypervisorConfig config;
    private final Map<VmId, Credential> credentials = new ConcurrentHashMap<>();
    private volatile boolean closed;

    private RemoteHypervisor(ClientChannel channel, HypervisorConfig config) {
        this.channel = channel;
        this.config = config;
    }

    /**
     * Connects to a daemon as a control-plane client.
     *
     * @param socketPath        the daemon's socket
     * @param controlCredential the daemon's {@link HypervisorDaemon#controlCredential() control credential}
     * @return the client
     * @throws HypervisorRefusedException if the daemon refuses the credential
     */
    public static RemoteHypervisor connect(Path socketPath, Credential controlCredential) {
        ClientChannel channel = ClientChannel.connect(socketPath);
        try {
            FrameChannel.Reader in = channel.handshake(WireLayout.HELLO_CONTROL, new FrameChannel.Writer().raw(controlCredential.bytes()));
            HypervisorConfig config = new HypervisorConfig(in.i32());
            channel.start("airlock-control-client", frame -> frame.closeFds(), () -> { });
            return new RemoteHypervisor(channel, config);
        } catch (RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    @Override
    public HypervisorConfig config() {
        return config;
    }

    /**
     * The credential issued for a VM this client created: the VM process attaches with it.
     *
     * @param vm the VM
     * @return its credential
     * @throws IllegalArgumentException if this client did not create the VM
     */
    public Credential credential(VmId vm) {
        Credential credential = credentials.get(vm);
        if (credential == null) {
            throw new IllegalArgumentException("no credential for " + vm + ": this client did not create it");
        }
        return credential;
    }

    private FrameChannel.Reader call(int type, FrameChannel.Writer payload) {
        if (closed) {
            throw new IllegalStateException("the hypervisor client is closed");
        }
        try {
            return channel.call(type, payload);
        } catch (ClientChannel.ConnectionClosedException e) {
            throw new IllegalStateException("the hypervisor daemon connection is closed", e);
        }
    }

    @Override
    public VmId createVm(VmSpec spec) {
        Objects.requireNonNull(spec, "spec");
        FrameChannel.Reader in = call(WireLayout.CREATE_VM, new FrameChannel.Writer().string(spec.name())
                .u8(spec.role().ordinal()).i64(spec.ramSizeBytes()).i64(spec.ramGpaBase()));
        VmId id = new VmId(in.i32());
        credentials.put(id, Credential.of(in.raw(WireLayout.CREDENTIAL_LENGTH)));
        return id;
    }

    /**
     * Issues the credential of a backend process for a primary/secondary pair: a process that
     * attaches with it ({@link RemoteVmContext#attach}) acts for the primary toward that secondary
     * only, and receives the pair's regions and doorbells instead of the primary's own process.
     * Assign the first before any grant between the two.
     *
     * <p>When the backend process dies (or closes its connection), the pair is kept: its regions,
     * message queues and doorbells stay, the messages queued toward the backend are dropped, and the
     * secondary receives {@link dev.airlock.hypervisor.InterruptCause#BACKEND_DETACHED}. Calling this
     * again then issues a fresh credential (the dead backend's no longer attaches); the process that
     * attaches with it is handed the pair's regions and doorbells, and the secondary receives
     * {@link dev.airlock.hypervisor.InterruptCause#BACKEND_ATTACHED} (as it does when the first
     * backend attaches). The primary lives on throughout.
     *
     * @param primary   the primary
     * @param secondary the secondary the backend serves
     * @return the backend's credential
     * @throws HypervisorRefusedException {@link dev.airlock.hypervisor.RefusalReason#CONFLICT} if the
     *         pair's backend is assigned or attached and has not died, or if the pair has grants but
     *         never had a backend
     */
    public Credential assignBackend(VmId primary, VmId secondary) {
        FrameChannel.Reader in = call(WireLayout.ASSIGN_BACKEND, new FrameChannel.Writer().i32(primary.value()).i32(secondary.value()));
        return Credential.of(in.raw(WireLayout.CREDENTIAL_LENGTH));
    }

    @Override
    public void startVm(VmId vm) {
        call(WireLayout.START_VM, new FrameChannel.Writer().i32(vm.value()));
    }

    @Override
    public void stopVm(VmId vm) {
        call(WireLayout.STOP_VM, new FrameChannel.Writer().i32(vm.value()));
    }

    @Override
    public void destroyVm(VmId vm) {
        call(WireLayout.DESTROY_VM, new FrameChannel.Writer().i32(vm.value()));
        credentials.remove(vm);
    }

    @Override
    public List<VmInfo> listVms() {
        FrameChannel.Reader in = call(WireLayout.LIST_VMS, new FrameChannel.Writer());
        int count = in.i32();
        List<VmInfo> vms = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            vms.add(readVm(in));
        }
        return List.copyOf(vms);
    }

    @Override
    public VmInfo vmInfo(VmId vm) {
        return readVm(call(WireLayout.VM_INFO, new FrameChannel.Writer().i32(vm.value())));
    }

    private static VmInfo readVm(FrameChannel.Reader in) {
        VmId id = new VmId(in.i32());
        String name = in.string();
        VmRole role = RequestCodec.enumValue(VmRole.values(), in.u8(), "role");
        VmState state = RequestCodec.enumValue(VmState.values(), in.u8(), "state");
        return new VmInfo(id, name, role, state, in.i64());
    }

    @Override
    public SharedRegionInfo createSharedRegion(VmId primary, VmId secondary, String name, long sizeBytes,
                                               long primaryGpaBase, long secondaryGpaBase) {
        Objects.requireNonNull(name, "name");
        FrameChannel.Reader in = call(WireLayout.CREATE_REGION, new FrameChannel.Writer().i32(primary.value())
                .i32(secondary.value()).string(name).i64(sizeBytes).i64(primaryGpaBase).i64(secondaryGpaBase));
        return new SharedRegionInfo(new SharedRegionId(in.i64()), name, sizeBytes, primary, secondary, primaryGpaBase,
                secondaryGpaBase);
    }

    @Override
    public void destroySharedRegion(SharedRegionId region) {
        call(WireLayout.DESTROY_REGION, new FrameChannel.Writer().i64(region.value()));
    }

    @Override
    public List<SharedRegionInfo> listSharedRegions() {
        FrameChannel.Reader in = call(WireLayout.LIST_REGIONS, new FrameChannel.Writer());
        int count = in.i32();
        List<SharedRegionInfo> regions = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            regions.add(new SharedRegionInfo(new SharedRegionId(in.i64()), in.string(), in.i64(), new VmId(in.i32()),
                    new VmId(in.i32()), in.i64(), in.i64()));
        }
        return List.copyOf(regions);
    }

    @Override
    public void connectMessageQueues(VmId primary, VmId secondary, int depth) {
        call(WireLayout.CONNECT_QUEUES, new FrameChannel.Writer().i32(primary.value()).i32(secondary.value()).i32(depth));
    }

    @Override
    public void connectDoorbells(VmId primary, VmId secondary) {
        call(WireLayout.CONNECT_DOORBELLS, new FrameChannel.Writer().i32(primary.value()).i32(secondary.value()));
    }

    /** Ends this client's connection; the VMs live on in the daemon. Idempotent. */
    public void disconnect() {
        if (!closed) {
            closed = true;
            channel.close();
        }
    }

    /** Destroys every VM the daemon holds, then disconnects. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        try {
            for (VmInfo vm : listVms()) {
                try {
                    destroyVm(vm.id());
                } catch (HypervisorRefusedException e) {
                    // destroyed meanwhile (its process died): nothing to do
                }
            }
        } finally {
            disconnect();
        }
    }
}
