package dev.airlock.hypervisor;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;

/**
 * A VM of the in-process runtime, and its hypercall interface. Its code runs on whatever threads
 * the embedder gives it; its interrupts run on its own interrupt thread.
 *
 * <p>Hypercalls are lock-free: a volatile state read, a {@link ConcurrentHashMap} lookup of the
 * link to the peer, volatile reads of the link's grants, then the queue or doorbell operation.
 * Control-plane changes (grants, lifecycle) are made by {@link InProcessHypervisor} under its lock.
 */
final class Vm implements VmContext {
    private static final System.Logger LOG = System.getLogger(Vm.class.getName());

    private final InProcessHypervisor hypervisor;
    private final VmId id;
    private final VmSpec spec;
    private final int maxMessageBytes;
    private final GuestAddressSpace addressSpace;
    private final PrivateMemory ram;
    private final InterruptController interrupts;
    /** Every peer this VM was ever connected to; revoked links stay as tombstones. */
    private final ConcurrentHashMap<VmId, Link> links = new ConcurrentHashMap<>();
    /** The shared regions visible in this VM's address space. */
    private final CopyOnWriteArrayList<SharedRegionMapping> mappings = new CopyOnWriteArrayList<>();
    /** The shared regions whose mapping on this side is not yet released (visible or retired). */
    private final CopyOnWriteArrayList<SharedRegion> held = new CopyOnWriteArrayList<>();
    private volatile VmState state = VmState.CREATED;
    private volatile InterruptHandler handler;

    Vm(InProcessHypervisor hypervisor, VmId id, VmSpec spec) {
        this.hypervisor = hypervisor;
        this.id = id;
        this.spec = spec;
        this.maxMessageBytes = hypervisor.config().maxMessageBytes();
        this.addressSpace = new GuestAddressSpace(spec.name());
        this.ram = new PrivateMemory("ram", spec.ramSizeBytes());
        addressSpace.add(ram.region(spec.ramGpaBase()));
        this.interrupts = new InterruptController(this, "airlock-vm-" + spec.name() + "-irq");
    }

    // ---- identity and memory -------------------------------------------------------------------

    @Override
    public VmId id() {
        return id;
    }

    @Override
    public String name() {
        return spec.name();
    }

    @Override
    public VmRole role() {
        return spec.role();
    }

    @Override
    public VmState state() {
        return state;
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
        return List.copyOf(mappings);
    }

    @Override
    public Set<VmId> peers() {
        return links.values().stream().filter(l -> !l.revoked).map(l -> l.peer.id()).collect(Collectors.toUnmodifiableSet());
    }

    @Override
    public void setInterruptHandler(InterruptHandler handler) {
        this.handler = handler;
    }

    // ---- message queues ------------------------------------------------------------------------

    @Override
    public SendResult sendMessage(VmId peer, MemorySegment message) {
        Objects.requireNonNull(message, "message");
        Link link = checkedLink(peer, Operation.SEND);
        MessageQueue queue = link.outboundQueue();
        if (queue == null) {
            throw notGranted(Operation.SEND, link.peer);
        }
        if (message.byteSize() > maxMessageBytes) {
            throw new HypervisorRefusedException(RefusalReason.MESSAGE_TOO_LARGE, "vm '" + name() + "' may not send "
                    + message.byteSize() + " bytes to vm '" + link.peer.name() + "': messages are at most "
                    + maxMessageBytes + " bytes");
        }
        return queue.offer(message);
    }

    @Override
    public int receiveMessage(VmId peer, MemorySegment buffer) {
        Objects.requireNonNull(buffer, "buffer");
        if (buffer.byteSize() < maxMessageBytes) {
            throw new IllegalArgumentException("a receive buffer needs at least " + maxMessageBytes + " bytes: " + buffer);
        }
        return inboundQueue(peer).poll(buffer);
    }

    @Override
    public Optional<byte[]> receiveMessage(VmId peer) {
        return Optional.ofNullable(inboundQueue(peer).poll());
    }

    private MessageQueue inboundQueue(VmId peer) {
        Link link = checkedLink(peer, Operation.RECEIVE);
        MessageQueue queue = link.inboundQueue;
        if (queue == null) {
            throw notGranted(Operation.RECEIVE, link.peer);
        }
        return queue;
    }

    // ---- doorbells -----------------------------------------------------------------------------

    @Override
    public void ringDoorbell(VmId peer, long flags) {
        if (flags == 0) {
            throw new IllegalArgumentException("vm '" + name() + "' rang a doorbell with no flags");
        }
        Link link = checkedLink(peer, Operation.RING);
        Doorbell doorbell = link.outboundDoorbell();
        if (doorbell == null) {
            throw notGranted(Operation.RING, link.peer);
        }
        doorbell.ring(flags);
    }

    @Override
    public long readAndClearDoorbell(VmId peer) {
        return inboundDoorbell(peer, Operation.READ_DOORBELL).readAndClear();
    }

    @Override
    public void maskDoorbell(VmId peer) {
        inboundDoorbell(peer, Operation.MASK).mask();
    }

    @Override
    public void unmaskDoorbell(VmId peer) {
        inboundDoorbell(peer, Operation.UNMASK).unmask();
    }

    private Doorbell inboundDoorbell(VmId peer, Operation operation) {
        Link link = checkedLink(peer, operation);
        Doorbell doorbell = link.inboundDoorbell;
        if (doorbell == null) {
            throw notGranted(operation, link.peer);
        }
        return doorbell;
    }

    // ---- the checks ----------------------------------------------------------------------------

    /** What a hypercall does, for refusal messages. */
    private enum Operation {
        SEND("send to", "message queue"),
        RECEIVE("receive from", "message queue"),
        RING("ring the doorbell of", "doorbell"),
        READ_DOORBELL("read the doorbell from", "doorbell"),
        MASK("mask the doorbell from", "doorbell"),
        UNMASK("unmask the doorbell from", "doorbell");

        final String verb;
        final String resource;

        Operation(String verb, String resource) {
            this.verb = verb;
            this.resource = resource;
        }
    }

    /** The live link to {@code peer}, after checking that this VM runs and holds a grant with it. */
    private Link checkedLink(VmId peer, Operation operation) {
        Objects.requireNonNull(peer, "peer");
        VmState current = state;
        if (current != VmState.RUNNING) {
            throw new HypervisorRefusedException(RefusalReason.NOT_RUNNING, "vm '" + name() + "' may not "
                    + operation.verb + " " + hypervisor.describe(peer) + ": vm '" + name() + "' is " + current);
        }
        Link link = links.get(peer);
        if (link == null) {
            throw unlinked(peer, operation);
        }
        if (link.revoked) {
            throw new HypervisorRefusedException(RefusalReason.REVOKED, "vm '" + name() + "' may not " + operation.verb
                    + " vm '" + link.peer.name() + "' (" + peer + "): the grant was revoked when that vm was destroyed");
        }
        return link;
    }

    private HypervisorRefusedException unlinked(VmId peer, Operation operation) {
        String refused = "vm '" + name() + "' may not " + operation.verb + " ";
        if (peer.equals(id)) {
            return new HypervisorRefusedException(RefusalReason.WRONG_VM, refused + "itself");
        }
        Vm other = hypervisor.find(peer);
        if (other == null) {
            return new HypervisorRefusedException(RefusalReason.NO_SUCH_VM, refused + peer + ": no such vm");
        }
        if (other.role() == VmRole.SECONDARY && role() == VmRole.SECONDARY) {
            return new HypervisorRefusedException(RefusalReason.WRONG_VM, refused + "vm '" + other.name()
                    + "': both are secondaries, and a secondary talks only to the primary");
        }
        return notGranted(operation, other);
    }

    private HypervisorRefusedException notGranted(Operation operation, Vm peer) {
        return new HypervisorRefusedException(RefusalReason.NOT_GRANTED, "vm '" + name() + "' may not " + operation.verb
                + " vm '" + peer.name() + "': no " + operation.resource + " between them");
    }

    // ---- used by the hypervisor and the interrupt thread ---------------------------------------

    InterruptController interrupts() {
        return interrupts;
    }

    void setState(VmState state) {
        this.state = state;
    }

    VmInfo info() {
        return new VmInfo(id, spec.name(), spec.role(), state, spec.ramSizeBytes());
    }

    Link link(VmId peer) {
        return links.get(peer);
    }

    Iterable<Link> links() {
        return links.values();
    }

    void putLink(Link link) {
        links.put(link.peer.id(), link);
    }

    /** Maps a shared region into this VM's address space; throws IllegalArgumentException on overlap or a taken name. */
    void attach(SharedRegion region) {
        SharedRegionMapping mapping = region.mappingOf(this);
        addressSpace.add(mapping.region());
        mappings.add(mapping);
        held.add(region);
    }

    /** Takes a shared region out of this VM's address space; its mapping stays until {@link #release}. */
    void detach(SharedRegionMapping mapping) {
        addressSpace.remove(mapping.region());
        mappings.remove(mapping);
    }

    /** Unmaps this VM's side of a shared region. */
    void release(SharedRegion region) {
        held.remove(region);
        try {
            region.release(this);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.ERROR, "releasing shared region '" + region.info.name() + "' of vm '" + name() + "' failed", e);
        }
    }

    /** Releases this VM's memory: its side of every shared region, then its RAM. Called once, after destroy. */
    void releaseMemory() {
        for (SharedRegion region : held) {
            release(region);
        }
        try {
            ram.close();
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.ERROR, "releasing the ram of vm '" + name() + "' failed", e);
        }
    }

    /**
     * Delivers the causes pending on {@code link} to the handler, on the interrupt thread. Once the
     * peer is gone only {@link InterruptCause#PEER_GONE} is delivered: the others are about grants
     * that no longer exist. After PEER_GONE is handled, this side of the regions shared with the
     * dead peer is unmapped.
     */
    void deliver(Link link, int causes) {
        if (link.revoked) {
            causes &= InterruptCause.PEER_GONE.bit();
        }
        for (InterruptCause cause : InterruptCause.ALL) {
            if ((causes & cause.bit()) == 0) {
                continue;
            }
            if (state == VmState.DESTROYED) {
                return;
            }
            InterruptHandler current = handler;
            if (current != null) {
                try {
                    current.onInterrupt(link.interrupt(cause));
                } catch (Throwable t) {
                    hypervisor.crash(this, link.interrupt(cause), t);
                    return;
                }
            }
            if (cause == InterruptCause.PEER_GONE) {
                link.releaseRetiredRegions();
            }
        }
    }

    @Override
    public String toString() {
        return "vm '" + name() + "' (" + id + ", " + role() + ", " + state + ")";
    }
}
