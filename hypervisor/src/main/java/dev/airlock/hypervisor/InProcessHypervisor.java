package dev.airlock.hypervisor;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Pattern;

/**
 * The in-process runtime: every VM lives in this JVM. A VM is its private RAM (an anonymous
 * mapping), its address space, its grants, and one daemon platform thread that delivers its
 * interrupts ({@code airlock-vm-NAME-irq}); its code runs on whatever threads the embedder uses
 * with its {@link VmContext} ({@link #context}). Shared regions are memfds mapped once per side.
 * Used by tests and the embedded demo; the multi-process runtime implements the same interfaces
 * (see the package documentation).
 *
 * <p>Control-plane calls are serialized by one lock; they never hold it while waiting for an
 * interrupt thread. Hypercalls take no lock. A control-plane call made from an interrupt handler
 * does not wait for any interrupt thread to finish (that could deadlock two VMs destroying each
 * other); it still takes effect before it returns, and the stopped thread ends after its handler.
 */
public final class InProcessHypervisor implements Hypervisor {
    private static final System.Logger LOG = System.getLogger(InProcessHypervisor.class.getName());
    /** The most memory one direction of a message queue may hold. */
    private static final long MAX_QUEUE_BYTES = 64L << 20;
    private static final Pattern REGION_NAME = Pattern.compile("[A-Za-z0-9._-]{1,64}");

    private final HypervisorConfig config;
    /** Live VMs; written under the lock, read without it by hypercalls that build refusals. */
    private final ConcurrentHashMap<VmId, Vm> vms = new ConcurrentHashMap<>();
    /** Guarded by {@code this}. */
    private final List<SharedRegion> regions = new ArrayList<>();
    /** Guarded by {@code this}. */
    private int nextVmId = 1;
    /** Guarded by {@code this}. */
    private long nextRegionId = 1;
    /** Guarded by {@code this}. */
    private boolean closed;

    /** Creates a hypervisor with the {@link HypervisorConfig#DEFAULT default} settings. */
    public InProcessHypervisor() {
        this(HypervisorConfig.DEFAULT);
    }

    /**
     * Creates a hypervisor.
     *
     * @param config its settings
     */
    public InProcessHypervisor(HypervisorConfig config) {
        this.config = Objects.requireNonNull(config, "config");
    }

    @Override
    public HypervisorConfig config() {
        return config;
    }

    /**
     * The hypercall interface of a VM, for the code that runs as that VM. In the multi-process
     * runtime the VM process obtains its own by attaching to the daemon instead.
     *
     * @param vm the VM
     * @return its context, with its identity bound in; valid for the VM's whole life
     * @throws HypervisorRefusedException {@link RefusalReason#NO_SUCH_VM}
     */
    public VmContext context(VmId vm) {
        return require(vm);
    }

    // ---- lifecycle -----------------------------------------------------------------------------

    @Override
    public synchronized VmId createVm(VmSpec spec) {
        Objects.requireNonNull(spec, "spec");
        checkOpen();
        for (Vm vm : vms.values()) {
            if (vm.name().equals(spec.name())) {
                throw new HypervisorRefusedException(RefusalReason.CONFLICT, "cannot create vm '" + spec.name()
                        + "': the name is taken by " + vm.id());
            }
            if (spec.role() == VmRole.PRIMARY && vm.role() == VmRole.PRIMARY) {
                throw new HypervisorRefusedException(RefusalReason.CONFLICT, "cannot create vm '" + spec.name()
                        + "' as a primary: vm '" + vm.name() + "' is the primary");
            }
        }
        VmId id = new VmId(nextVmId++);
        vms.put(id, new Vm(this, id, spec));
        return id;
    }

    @Override
    public synchronized void startVm(VmId id) {
        Vm vm = require(id);
        if (vm.state() != VmState.RUNNING) {
            vm.setState(VmState.RUNNING);
            vm.interrupts().start();
        }
    }

    @Override
    public void stopVm(VmId id) {
        Thread interruptThread = null;
        synchronized (this) {
            Vm vm = require(id);
            if (vm.state() == VmState.RUNNING) {
                vm.setState(VmState.STOPPED);
                interruptThread = vm.interrupts().stop();
            }
        }
        InterruptController.awaitEnd(interruptThread);
    }

    @Override
    public void destroyVm(VmId id) {
        Vm vm;
        Thread interruptThread;
        synchronized (this) {
            vm = require(id);
            interruptThread = destroyLocked(vm);
        }
        InterruptController.awaitEnd(interruptThread);
        vm.releaseMemory();
    }

    /** A VM's interrupt handler threw: the VM dies as if destroyed. Called on its interrupt thread. */
    void crash(Vm vm, Interrupt interrupt, Throwable cause) {
        synchronized (this) {
            if (vms.get(vm.id()) != vm) {
                // Destroyed while its handler ran (by another VM's handler, say): the throw is a
                // consequence, for example an access to memory released under it.
                LOG.log(System.Logger.Level.DEBUG, "interrupt handler of destroyed vm '" + vm.name() + "' threw", cause);
                return;
            }
            destroyLocked(vm);
        }
        LOG.log(System.Logger.Level.ERROR, "vm '" + vm.name() + "' (" + vm.id() + ") died: its interrupt handler threw on "
                + interrupt.cause() + " from " + describe(interrupt.peer()) + "; it was destroyed", cause);
        vm.releaseMemory();
    }

    /**
     * Revokes everything a VM holds and tells its peers. The VM's own memory is released by the
     * caller after its interrupt thread has ended.
     *
     * @return the VM's interrupt thread, to be joined
     */
    private Thread destroyLocked(Vm vm) {
        vm.setState(VmState.DESTROYED);
        vms.remove(vm.id());
        for (Link link : vm.links()) {
            link.revoked = true;
            link.reverse.revoked = true;
        }
        for (SharedRegion region : List.copyOf(regions)) {
            if (region.primary != vm && region.secondary != vm) {
                continue;
            }
            regions.remove(region);
            region.detach();
            Vm survivor = region.peerOf(vm);
            if (survivor.state() == VmState.RUNNING) {
                // Unmapped on the survivor's interrupt thread once its PEER_GONE handler returns.
                survivor.link(vm.id()).retire(region);
            } else {
                survivor.release(region); // not running: no code of its own is using the region
            }
        }
        for (Link link : vm.links()) {
            if (link.peer.state() != VmState.DESTROYED) {
                link.reverse.raise(InterruptCause.PEER_GONE);
            }
        }
        return vm.interrupts().stop();
    }

    @Override
    public void close() {
        List<Vm> destroyed = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            for (Vm vm : List.copyOf(vms.values())) {
                threads.add(destroyLocked(vm));
                destroyed.add(vm);
            }
        }
        threads.forEach(InterruptController::awaitEnd);
        destroyed.forEach(Vm::releaseMemory);
    }

    // ---- queries -------------------------------------------------------------------------------

    @Override
    public List<VmInfo> listVms() {
        return vms.values().stream().map(Vm::info).sorted(Comparator.comparingInt(i -> i.id().value())).toList();
    }

    @Override
    public VmInfo vmInfo(VmId id) {
        return require(id).info();
    }

    @Override
    public synchronized List<SharedRegionInfo> listSharedRegions() {
        return regions.stream().map(r -> r.info).toList();
    }

    // ---- grants --------------------------------------------------------------------------------

    @Override
    public synchronized SharedRegionInfo createSharedRegion(VmId primaryId, VmId secondaryId, String name, long sizeBytes,
                                                            long primaryGpaBase, long secondaryGpaBase) {
        Objects.requireNonNull(name, "name");
        if (!REGION_NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("a region name is 1 to 64 of [A-Za-z0-9._-]: '" + name + "'");
        }
        if (sizeBytes <= 0 || (sizeBytes & 4095) != 0) {
            throw new IllegalArgumentException("region '" + name + "': size must be a positive multiple of 4096: " + sizeBytes);
        }
        checkBase(name, "primary", primaryGpaBase, sizeBytes);
        checkBase(name, "secondary", secondaryGpaBase, sizeBytes);
        checkOpen();
        Vm primary = require(primaryId);
        Vm secondary = require(secondaryId);
        checkPair(primary, secondary, "share region '" + name + "'");
        SharedRegionInfo info = new SharedRegionInfo(new SharedRegionId(nextRegionId), name, sizeBytes, primaryId, secondaryId,
                primaryGpaBase, secondaryGpaBase);
        SharedRegion region = SharedRegion.create(info, primary, secondary);
        try {
            primary.attach(region);
        } catch (IllegalArgumentException e) {
            primary.release(region);
            secondary.release(region);
            throw new HypervisorRefusedException(RefusalReason.CONFLICT, "cannot share region '" + name + "': " + e.getMessage());
        }
        try {
            secondary.attach(region);
        } catch (IllegalArgumentException e) {
            primary.detach(region.primaryMapping);
            primary.release(region);
            secondary.release(region);
            throw new HypervisorRefusedException(RefusalReason.CONFLICT, "cannot share region '" + name + "': " + e.getMessage());
        }
        nextRegionId++;
        regions.add(region);
        linkOf(primary, secondary);
        return info;
    }

    private static void checkBase(String name, String side, long gpaBase, long sizeBytes) {
        if ((gpaBase & 4095) != 0 || Long.compareUnsigned(gpaBase, -sizeBytes) > 0) {
            throw new IllegalArgumentException("region '" + name + "': the " + side + " base 0x" + Long.toHexString(gpaBase)
                    + " is not page aligned or the region wraps around 2^64");
        }
    }

    @Override
    public synchronized void destroySharedRegion(SharedRegionId id) {
        Objects.requireNonNull(id, "id");
        SharedRegion region = regions.stream().filter(r -> r.info.id().equals(id)).findFirst()
                .orElseThrow(() -> new HypervisorRefusedException(RefusalReason.NOT_GRANTED, "cannot destroy " + id + ": no such shared region"));
        regions.remove(region);
        region.detach();
        region.primary.release(region);
        region.secondary.release(region);
    }

    @Override
    public synchronized void connectMessageQueues(VmId primaryId, VmId secondaryId, int depth) {
        if (depth < 2 || depth > 65_536) {
            throw new IllegalArgumentException("a message queue depth is in [2, 65536]: " + depth);
        }
        if ((long) depth * config.maxMessageBytes() > MAX_QUEUE_BYTES) {
            throw new IllegalArgumentException("a message queue of " + depth + " messages of " + config.maxMessageBytes()
                    + " bytes exceeds " + MAX_QUEUE_BYTES + " bytes");
        }
        checkOpen();
        Vm primary = require(primaryId);
        Vm secondary = require(secondaryId);
        checkPair(primary, secondary, "connect message queues");
        Link toSecondary = linkOf(primary, secondary);
        Link toPrimary = toSecondary.reverse;
        if (toSecondary.inboundQueue != null) {
            throw new HypervisorRefusedException(RefusalReason.CONFLICT, "cannot connect message queues between vm '"
                    + primary.name() + "' and vm '" + secondary.name() + "': they are already connected");
        }
        int slotBytes = config.maxMessageBytes();
        toSecondary.inboundQueue = new MessageQueue(depth, slotBytes, toPrimary, toSecondary);
        toPrimary.inboundQueue = new MessageQueue(depth, slotBytes, toSecondary, toPrimary);
    }

    @Override
    public synchronized void connectDoorbells(VmId primaryId, VmId secondaryId) {
        checkOpen();
        Vm primary = require(primaryId);
        Vm secondary = require(secondaryId);
        checkPair(primary, secondary, "connect doorbells");
        Link toSecondary = linkOf(primary, secondary);
        if (toSecondary.inboundDoorbell != null) {
            throw new HypervisorRefusedException(RefusalReason.CONFLICT, "cannot connect doorbells between vm '"
                    + primary.name() + "' and vm '" + secondary.name() + "': they are already connected");
        }
        toSecondary.inboundDoorbell = new Doorbell(toSecondary);
        toSecondary.reverse.inboundDoorbell = new Doorbell(toSecondary.reverse);
    }

    /** The primary's link to the secondary, creating the pair of links if needed. Under the lock. */
    private static Link linkOf(Vm primary, Vm secondary) {
        Link existing = primary.link(secondary.id());
        if (existing != null) {
            return existing;
        }
        Link toSecondary = new Link(primary, secondary);
        Link toPrimary = new Link(secondary, primary);
        toSecondary.reverse = toPrimary;
        toPrimary.reverse = toSecondary;
        // Published by the ConcurrentHashMap puts: a hypercall that finds a link sees its reverse.
        primary.putLink(toSecondary);
        secondary.putLink(toPrimary);
        return toSecondary;
    }

    private static void checkPair(Vm primary, Vm secondary, String action) {
        if (primary == secondary) {
            throw new HypervisorRefusedException(RefusalReason.WRONG_VM, "cannot " + action + " between vm '"
                    + primary.name() + "' and itself");
        }
        if (primary.role() != VmRole.PRIMARY || secondary.role() != VmRole.SECONDARY) {
            throw new HypervisorRefusedException(RefusalReason.WRONG_VM, "cannot " + action + " between vm '"
                    + primary.name() + "' (" + primary.role() + ") and vm '" + secondary.name() + "' (" + secondary.role()
                    + "): the first must be the primary and the second a secondary");
        }
    }

    // ---- helpers -------------------------------------------------------------------------------

    private Vm require(VmId id) {
        Objects.requireNonNull(id, "id");
        Vm vm = vms.get(id);
        if (vm == null) {
            throw new HypervisorRefusedException(RefusalReason.NO_SUCH_VM, "no such vm: " + id);
        }
        return vm;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the hypervisor is closed");
        }
    }

    /** A live VM, or null. */
    Vm find(VmId id) {
        return vms.get(id);
    }

    /** A VM for a message: {@code vm 'name'} if live, else its id. */
    String describe(VmId id) {
        Vm vm = vms.get(id);
        return vm == null ? id.toString() : "vm '" + vm.name() + "'";
    }
}
