package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.Interrupt;
import dev.airlock.hypervisor.InterruptCause;
import dev.airlock.hypervisor.InterruptHandler;
import dev.airlock.hypervisor.RefusalReason;
import dev.airlock.hypervisor.SendResult;
import dev.airlock.hypervisor.SharedRegionId;
import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmRole;
import dev.airlock.hypervisor.VmState;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;
import dev.airlock.memory.SharedMemory;
import dev.airlock.memory.sys.Linux;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;

/**
 * A VM process's hypercall interface in the multi-process runtime: the process attaches to the
 * {@link HypervisorDaemon} with its VM's credential and becomes that VM. Its private RAM is a
 * {@link PrivateMemory} of this process, never shared and never sent; shared regions arrive as
 * memfds ({@code SCM_RIGHTS}) and are mapped here at this VM's own bases; doorbells are a shared
 * page plus eventfds ({@link DoorbellPageLayout}); message queues are kept by the daemon, so a send
 * or receive is one round trip on the socket (non-blocking in the {@link VmContext} sense: it never
 * waits for queue space or a message). Interrupts run on this process's interrupt thread
 * ({@code airlock-vm-NAME-irq}), one at a time, held while the VM is not running.
 *
 * <p>Closing the context (or the process dying) ends the connection; the daemon then destroys the
 * VM and tells its peers. When the daemon destroys the VM, the context releases everything: RAM,
 * regions, doorbells, threads; later hypercalls are refused with {@link RefusalReason#NOT_RUNNING}.
 * A receive copies the message through the socket, so unlike the in-process runtime it allocates.
 *
 * <p>A secondary whose pair is served by a backend process also receives
 * {@link InterruptCause#BACKEND_DETACHED} and {@link InterruptCause#BACKEND_ATTACHED} about its
 * primary; nothing is revoked or unmapped for them. When both are pending together, the attach is
 * delivered only if no detach arrived after it, so the last one delivered is the current state.
 */
public final class RemoteVmContext implements VmContext, AutoCloseable {
    private static final System.Logger LOG = System.getLogger(RemoteVmContext.class.getName());

    private record MappedRegion(SharedRegionMapping mapping, SharedMemory memory) {
    }

    private final ClientChannel channel;
    private final VmId id;
    private final String name;
    private final VmRole role;
    private final int maxMessageBytes;
    /** This VM's private RAM, in this process only; null in a backend process. */
    private final PrivateMemory ram;
    /** Null for the VM's own process; for a backend process, the one secondary it serves. */
    private final VmId servedPeer;
    private final GuestAddressSpace addressSpace;
    private final InterruptDispatcher dispatcher;
    private final Map<Long, MappedRegion> regions = new ConcurrentHashMap<>();
    /** Regions with a dead peer: out of the address space, unmapped after PEER_GONE is handled. */
    private final Map<VmId, List<MappedRegion>> retired = new ConcurrentHashMap<>();
    private final Map<VmId, RemoteDoorbell> doorbells = new ConcurrentHashMap<>();
    private final Set<VmId> linked = ConcurrentHashMap.newKeySet();
    private final Set<VmId> revoked = ConcurrentHashMap.newKeySet();
    /** Primaries whose backend for this secondary is detached, as the daemon last said (connection thread). */
    private final Set<VmId> backendDetached = ConcurrentHashMap.newKeySet();
    private volatile VmState state;
    private volatile InterruptHandler handler;
    private boolean released;

    private RemoteVmContext(ClientChannel channel, FrameChannel.Reader attached) {
        this.channel = channel;
        this.id = RequestCodec.vmId(attached);
        this.name = attached.string();
        this.role = RequestCodec.enumValue(VmRole.values(), attached.u8(), "role");
        this.state = RequestCodec.enumValue(VmState.values(), attached.u8(), "state");
        long ramSize = attached.i64();
        long ramBase = attached.i64();
        this.maxMessageBytes = attached.i32();
        int served = attached.i32();
        attached.end();
        this.servedPeer = served == 0 ? null : new VmId(served);
        this.addressSpace = new GuestAddressSpace(servedPeer == null ? name : name + ":backend-" + served);
        if (servedPeer == null) {
            this.ram = new PrivateMemory("ram", ramSize);
            addressSpace.add(ram.region(ramBase));
        } else {
            this.ram = null; // a backend process: the primary's RAM stays in the primary's process
        }
        this.dispatcher = new InterruptDispatcher("airlock-vm-" + name + "-irq", () -> state == VmState.RUNNING, this::deliver);
    }

    /**
     * Attaches this process to the daemon as the VM {@code credential} was issued for. The daemon
     * checks the credential and this process's uid and pid ({@code SO_PEERCRED}); a credential is
     * bound to the first pid that presents it.
     *
     * @param socketPath the daemon's socket
     * @param credential the VM's credential ({@link RemoteHypervisor#credential}), or a backend's
     *                   ({@link RemoteHypervisor#assignBackend})
     * @return the VM's hypercall interface
     * @throws HypervisorRefusedException {@link RefusalReason#NOT_GRANTED} for an unknown credential or
     *         one bound to another process, {@link RefusalReason#CONFLICT} if the VM is attached
     */
    public static RemoteVmContext attach(Path socketPath, Credential credential) {
        ClientChannel channel = ClientChannel.connect(socketPath);
        RemoteVmContext context;
        try {
            context = new RemoteVmContext(channel, channel.handshake(WireLayout.ATTACH,
                    new FrameChannel.Writer().raw(credential.bytes())));
        } catch (RuntimeException e) {
            channel.close();
            throw e;
        }
        context.dispatcher.start();
        channel.start("airlock-vm-" + context.name + "-conn", context::onEvent, context::onConnectionEnd);
        return context;
    }

    // ---- identity and memory -------------------------------------------------------------------

    /**
     * Whether this process is a backend of the primary rather than the VM itself, and for which
     * secondary. A backend has no RAM in its address space, only the regions shared with that
     * secondary, and may reach only that secondary.
     *
     * @return the secondary served, or empty for the VM's own process
     */
    public Optional<VmId> servedPeer() {
        return Optional.ofNullable(servedPeer);
    }

    @Override
    public VmId id() {
        return id;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public VmRole role() {
        return role;
    }

    @Override
    public VmState state() {
        return state;
    }

    /**
     * Waits until the daemon has told this process that the VM is in {@code wanted}.
     *
     * @param wanted  the state
     * @param timeout the longest wait
     * @return whether it got there in time
     */
    public boolean awaitState(VmState wanted, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (state != wanted) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            Thread.onSpinWait();
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return state == wanted;
            }
        }
        return true;
    }

    @Override
    public int maxMessageBytes() {
        return maxMessageBytes;
    }

    @Override
    public GuestAddressSpace addressSpace() {
        return addressSpace;
    }

    @Override
    public List<SharedRegionMapping> sharedRegions() {
        return regions.values().stream().map(MappedRegion::mapping)
                .sorted(Comparator.comparingLong(m -> m.id().value())).toList();
    }

    @Override
    public Set<VmId> peers() {
        return linked.stream().filter(p -> !revoked.contains(p)).collect(Collectors.toUnmodifiableSet());
    }

    @Override
    public void setInterruptHandler(InterruptHandler handler) {
        this.handler = handler;
    }

    // ---- message queues (kept by the daemon) ---------------------------------------------------

    @Override
    public SendResult sendMessage(VmId peer, MemorySegment message) {
        Objects.requireNonNull(peer, "peer");
        Objects.requireNonNull(message, "message");
        // Longer messages are cut to one byte over the limit: the daemon checks the grant first,
        // as every runtime does, then refuses the size.
        int length = (int) Math.min(message.byteSize(), maxMessageBytes + 1L);
        byte[] bytes = message.asSlice(0, length).toArray(ValueLayout.JAVA_BYTE);
        FrameChannel.Reader in;
        try {
            in = call(WireLayout.SEND, new FrameChannel.Writer().i32(peer.value()).bytes(bytes, 0, bytes.length), "send to", peer);
        } catch (HypervisorRefusedException e) {
            if (e.reason() == RefusalReason.MESSAGE_TOO_LARGE) {
                throw new HypervisorRefusedException(RefusalReason.MESSAGE_TOO_LARGE, "vm '" + name + "' may not send "
                        + message.byteSize() + " bytes to " + peer + ": messages are at most " + maxMessageBytes + " bytes");
            }
            throw e;
        }
        return RequestCodec.enumValue(SendResult.values(), in.u8(), "send result");
    }

    @Override
    public int receiveMessage(VmId peer, MemorySegment buffer) {
        Objects.requireNonNull(buffer, "buffer");
        if (buffer.byteSize() < maxMessageBytes) {
            throw new IllegalArgumentException("a receive buffer needs at least " + maxMessageBytes + " bytes: " + buffer);
        }
        Optional<byte[]> message = receiveMessage(peer);
        if (message.isEmpty()) {
            return EMPTY;
        }
        MemorySegment.copy(message.get(), 0, buffer, ValueLayout.JAVA_BYTE, 0, message.get().length);
        return message.get().length;
    }

    @Override
    public Optional<byte[]> receiveMessage(VmId peer) {
        Objects.requireNonNull(peer, "peer");
        FrameChannel.Reader in = call(WireLayout.RECEIVE, new FrameChannel.Writer().i32(peer.value()), "receive from", peer);
        int length = in.i32();
        if (length == -1) {
            return Optional.empty();
        }
        if (length < 0 || length > maxMessageBytes) {
            throw new ProtocolViolationException("received a message of " + length + " bytes");
        }
        return Optional.of(in.raw(length));
    }

    private FrameChannel.Reader call(int type, FrameChannel.Writer payload, String verb, VmId peer) {
        try {
            return channel.call(type, payload);
        } catch (ClientChannel.ConnectionClosedException e) {
            throw new HypervisorRefusedException(RefusalReason.NOT_RUNNING, "vm '" + name + "' may not " + verb + " "
                    + peer + ": vm '" + name + "' is " + VmState.DESTROYED);
        }
    }

    // ---- doorbells (a shared page and eventfds) ------------------------------------------------

    @Override
    public void ringDoorbell(VmId peer, long flags) {
        if (flags == 0) {
            throw new IllegalArgumentException("vm '" + name + "' rang a doorbell with no flags");
        }
        if (!doorbell(peer, "ring the doorbell of", 0).ring(flags)) {
            throw revokedOrGone(peer, "ring the doorbell of");
        }
    }

    @Override
    public long readAndClearDoorbell(VmId peer) {
        OptionalLong flags = doorbell(peer, "read the doorbell from", 1).readAndClear();
        if (flags.isEmpty()) {
            throw revokedOrGone(peer, "read the doorbell from");
        }
        return flags.getAsLong();
    }

    @Override
    public void maskDoorbell(VmId peer) {
        if (!doorbell(peer, "mask the doorbell from", 1).mask()) {
            throw revokedOrGone(peer, "mask the doorbell from");
        }
    }

    @Override
    public void unmaskDoorbell(VmId peer) {
        if (!doorbell(peer, "unmask the doorbell from", 1).unmask()) {
            throw revokedOrGone(peer, "unmask the doorbell from");
        }
    }

    /** The doorbell with {@code peer}, after the checks every runtime makes, in their order. */
    private RemoteDoorbell doorbell(VmId peer, String verb, int operation) {
        Objects.requireNonNull(peer, "peer");
        VmState current = state;
        if (current != VmState.RUNNING) {
            throw new HypervisorRefusedException(RefusalReason.NOT_RUNNING, "vm '" + name + "' may not " + verb + " "
                    + peer + ": vm '" + name + "' is " + current);
        }
        if (revoked.contains(peer)) {
            throw revokedOrGone(peer, verb);
        }
        RemoteDoorbell doorbell = doorbells.get(peer);
        if (doorbell != null) {
            return doorbell;
        }
        // Not granted here: the daemon knows why (no such vm, two secondaries, no doorbell).
        call(WireLayout.CHECK_DOORBELL, new FrameChannel.Writer().i32(peer.value()).u8(operation), verb, peer);
        throw new HypervisorRefusedException(RefusalReason.NOT_GRANTED, "vm '" + name + "' may not " + verb + " "
                + peer + ": the doorbell is granted but not yet handed to this process");
    }

    private HypervisorRefusedException revokedOrGone(VmId peer, String verb) {
        if (state != VmState.RUNNING) {
            return new HypervisorRefusedException(RefusalReason.NOT_RUNNING, "vm '" + name + "' may not " + verb + " "
                    + peer + ": vm '" + name + "' is " + state);
        }
        return new HypervisorRefusedException(RefusalReason.REVOKED, "vm '" + name + "' may not " + verb + " " + peer
                + ": the grant was revoked when that vm was destroyed");
    }

    // ---- events from the daemon (connection reader thread) -------------------------------------

    private void onEvent(FrameChannel.Frame frame) {
        FrameChannel.Reader in = frame.payload();
        int[] fds = frame.fds();
        int expectedFds = switch (frame.type()) {
            case WireLayout.REGION_GRANTED -> 1;
            case WireLayout.DOORBELL_GRANTED -> 3;
            default -> 0;
        };
        if (fds.length != expectedFds) {
            frame.closeFds();
            throw new ProtocolViolationException("event type " + frame.type() + " carries " + fds.length + " descriptors");
        }
        switch (frame.type()) {
            case WireLayout.INTERRUPT -> {
                InterruptCause cause = RequestCodec.enumValue(InterruptCause.values(), in.u8(), "cause");
                VmId peer = RequestCodec.vmId(in);
                in.end();
                if (cause == InterruptCause.PEER_GONE) {
                    peerGone(peer);
                } else if (cause == InterruptCause.BACKEND_DETACHED) {
                    backendDetached.add(peer);
                } else if (cause == InterruptCause.BACKEND_ATTACHED) {
                    backendDetached.remove(peer);
                }
                dispatcher.raise(peer, cause);
            }
            case WireLayout.STATE -> {
                VmState next = RequestCodec.enumValue(VmState.values(), in.u8(), "state");
                in.end();
                state = next;
                dispatcher.wake();
            }
            case WireLayout.LINKED -> {
                VmId peer = RequestCodec.vmId(in);
                in.end();
                linked.add(peer);
            }
            case WireLayout.REGION_GRANTED -> regionGranted(in, fds[0]);
            case WireLayout.REGION_REVOKED -> {
                long regionId = in.i64();
                in.end();
                MappedRegion region = regions.remove(regionId);
                if (region != null) {
                    addressSpace.remove(region.mapping.region());
                    region.memory.close();
                }
            }
            case WireLayout.DOORBELL_GRANTED -> {
                VmId peer;
                try {
                    peer = RequestCodec.vmId(in);
                    in.end();
                } catch (ProtocolViolationException e) {
                    frame.closeFds();
                    throw e;
                }
                RemoteDoorbell doorbell;
                try {
                    doorbell = new RemoteDoorbell(name, peer, role == VmRole.PRIMARY, fds[0], fds[1], fds[2], dispatcher);
                } catch (RuntimeException e) {
                    frame.closeFds();
                    throw new ProtocolViolationException("bad doorbell grant from " + peer + ": " + e.getMessage());
                }
                RemoteDoorbell previous = doorbells.put(peer, doorbell);
                if (previous != null) {
                    previous.close();
                }
            }
            default -> throw new ProtocolViolationException("unknown event type " + frame.type());
        }
    }

    private void regionGranted(FrameChannel.Reader in, int fd) {
        SharedMemory memory = null;
        try {
            long regionId = in.i64();
            VmId peer = RequestCodec.vmId(in);
            String regionName = in.string();
            long size = in.i64();
            long gpaBase = in.i64();
            in.end();
            memory = SharedMemory.map(regionName, fd, size, true);
            SharedRegionMapping mapping = new SharedRegionMapping(new SharedRegionId(regionId), peer, memory.region(gpaBase));
            addressSpace.add(mapping.region());
            regions.put(regionId, new MappedRegion(mapping, memory));
        } catch (RuntimeException e) {
            if (memory != null) {
                memory.close();
            } else {
                Linux.close(fd);
            }
            throw e instanceof ProtocolViolationException p ? p : new ProtocolViolationException("bad region grant: " + e.getMessage());
        }
    }

    /** The peer is gone: its grants are revoked, its regions leave the address space now. */
    private void peerGone(VmId peer) {
        revoked.add(peer);
        RemoteDoorbell doorbell = doorbells.remove(peer);
        if (doorbell != null) {
            doorbell.close();
        }
        List<MappedRegion> gone = new ArrayList<>();
        for (MappedRegion region : List.copyOf(regions.values())) {
            if (region.mapping.peer().equals(peer)) {
                regions.remove(region.mapping.id().value());
                addressSpace.remove(region.mapping.region());
                gone.add(region);
            }
        }
        if (state != VmState.RUNNING) {
            gone.forEach(r -> r.memory.close()); // no code of this VM runs to reset its devices
        } else if (!gone.isEmpty()) {
            retired.merge(peer, gone, (a, b) -> {
                List<MappedRegion> all = new ArrayList<>(a);
                all.addAll(b);
                return all;
            });
        }
    }

    /** The connection ended: the VM was destroyed (or the daemon went away). Releases everything. */
    private void onConnectionEnd() {
        state = VmState.DESTROYED;
        dispatcher.stop();
        releaseAll();
    }

    private synchronized void releaseAll() {
        if (released) {
            return;
        }
        released = true;
        for (RemoteDoorbell doorbell : List.copyOf(doorbells.values())) {
            doorbell.close();
        }
        doorbells.clear();
        for (MappedRegion region : List.copyOf(regions.values())) {
            addressSpace.remove(region.mapping.region());
            region.memory.close();
        }
        regions.clear();
        for (VmId peer : List.copyOf(retired.keySet())) {
            List<MappedRegion> gone = retired.remove(peer); // removed first: the interrupt thread may race for it
            if (gone != null) {
                gone.forEach(r -> r.memory.close());
            }
        }
        if (ram != null) {
            ram.close();
        }
    }

    // ---- interrupt delivery (interrupt thread) -------------------------------------------------

    private void deliver(VmId peer, int causes) {
        if (revoked.contains(peer)) {
            causes &= InterruptDispatcher.bit(InterruptCause.PEER_GONE);
        }
        if ((causes & InterruptDispatcher.bit(InterruptCause.BACKEND_DETACHED)) != 0 && backendDetached.contains(peer)) {
            // Coalesced attach and detach: the detach (first, by ordinal) is the latest news.
            causes &= ~InterruptDispatcher.bit(InterruptCause.BACKEND_ATTACHED);
        }
        for (InterruptCause cause : InterruptCause.values()) {
            if ((causes & InterruptDispatcher.bit(cause)) == 0) {
                continue;
            }
            if (state == VmState.DESTROYED) {
                return;
            }
            InterruptHandler current = handler;
            if (current != null) {
                try {
                    current.onInterrupt(new Interrupt(cause, peer));
                } catch (Throwable t) {
                    LOG.log(System.Logger.Level.ERROR, "vm '" + name + "' (" + id + ") dies: its interrupt handler threw on "
                            + cause + " from " + peer, t);
                    close();
                    return;
                }
            }
            if (cause == InterruptCause.PEER_GONE) {
                List<MappedRegion> gone = retired.remove(peer);
                if (gone != null) {
                    gone.forEach(r -> r.memory.close());
                }
            }
        }
    }

    /**
     * The threads this context runs: its interrupt thread and one waiter per doorbell, for leak checks.
     *
     * @return the interrupt thread's name prefix
     */
    public String threadNamePrefix() {
        return "airlock-vm-" + name + "-";
    }

    /**
     * Detaches: the daemon destroys the VM and tells its peers. Releases this process's RAM,
     * regions, doorbells and threads. Idempotent.
     */
    @Override
    public void close() {
        channel.close();
        if (Thread.currentThread() != dispatcher.thread()) {
            try {
                dispatcher.thread().join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public String toString() {
        return "remote vm '" + name + "' (" + id + ", " + role + ", " + state + ")";
    }
}
