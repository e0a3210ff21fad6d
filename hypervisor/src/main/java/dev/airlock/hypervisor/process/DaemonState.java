package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.InterruptCause;
import dev.airlock.hypervisor.RefusalReason;
import dev.airlock.hypervisor.SendResult;
import dev.airlock.hypervisor.SharedRegionId;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmInfo;
import dev.airlock.hypervisor.VmRole;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.VmState;
import dev.airlock.memory.sys.Linux;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.regex.Pattern;

import static dev.airlock.hypervisor.process.DaemonEvents.connectionFor;
import static dev.airlock.hypervisor.process.DaemonEvents.grantDoorbells;
import static dev.airlock.hypervisor.process.DaemonEvents.grantRegion;
import static dev.airlock.hypervisor.process.DaemonEvents.interrupt;
import static dev.airlock.hypervisor.process.DaemonEvents.linked;

/**
 * What the daemon owns: VMs, their credentials and connections, the pairs between a primary and a
 * secondary (message queues, doorbells, revocation), and shared regions (one memfd each). Every
 * method is synchronized: the daemon's rules are checked and applied under one lock, and events to
 * VM processes are queued (never sent) under it, so a slow reader never stalls the daemon.
 */
final class DaemonState {
    private static final System.Logger LOG = System.getLogger(DaemonState.class.getName());
    private static final Pattern REGION_NAME = Pattern.compile("[A-Za-z0-9._-]{1,64}");
    private static final long MAX_QUEUE_BYTES = 64L << 20;
    private static final long PAGE = 4096;

    final HypervisorConfig config;
    private final Map<VmId, DaemonVm> vms = new TreeMap<>((a, b) -> Integer.compare(a.value(), b.value()));
    private final Map<Long, RegionEntry> regions = new TreeMap<>();
    private int nextVmId = 1;
    private long nextRegionId = 1;
    private boolean closed;

    DaemonState(HypervisorConfig config) {
        this.config = config;
    }

    /** A shared region and its memfd. */
    record RegionEntry(SharedRegionInfo info, SharedFd memfd) {
    }

    // ---- lifecycle -----------------------------------------------------------------------------

    record Created(VmId id, Credential credential) {
    }

    synchronized Created createVm(VmSpec spec) {
        checkOpen();
        for (DaemonVm vm : vms.values()) {
            if (vm.spec.name().equals(spec.name())) {
                throw refused(RefusalReason.CONFLICT, "cannot create vm '" + spec.name() + "': the name is taken by " + vm.id);
            }
            if (spec.role() == VmRole.PRIMARY && vm.spec.role() == VmRole.PRIMARY) {
                throw refused(RefusalReason.CONFLICT, "cannot create vm '" + spec.name() + "' as a primary: "
                        + vm.describe() + " is the primary");
            }
        }
        DaemonVm vm = new DaemonVm(new VmId(nextVmId++), spec, Credential.random());
        vms.put(vm.id, vm);
        return new Created(vm.id, vm.credential);
    }

    synchronized void startVm(VmId id) {
        setState(require(id), VmState.RUNNING);
    }

    synchronized void stopVm(VmId id) {
        DaemonVm vm = require(id);
        if (vm.state == VmState.RUNNING) {
            setState(vm, VmState.STOPPED);
        }
    }

    private static void setState(DaemonVm vm, VmState state) {
        if (vm.state == state) {
            return;
        }
        vm.state = state;
        if (vm.connection != null) {
            vm.connection.event(WireLayout.STATE, new FrameChannel.Writer().u8(state.ordinal()));
        }
        for (DaemonBackend backend : vm.backends.values()) {
            if (backend.connection != null) {
                backend.connection.event(WireLayout.STATE, new FrameChannel.Writer().u8(state.ordinal()));
            }
        }
    }

    synchronized void destroyVm(VmId id) {
        destroyLocked(require(id), "destroyed");
    }

    /** Revokes everything a VM holds, tells its peers, closes the daemon's descriptors for it. */
    private void destroyLocked(DaemonVm vm, String how) {
        vm.state = VmState.DESTROYED;
        vms.remove(vm.id);
        for (DaemonPair pair : vm.pairs.values()) {
            if (pair.revoked) {
                continue;
            }
            pair.revoked = true;
            pair.releaseDoorbells();
            pair.toPrimary = pair.toPrimary == null ? null : new ArrayDeque<>(0);
            pair.toSecondary = pair.toSecondary == null ? null : new ArrayDeque<>(0);
            interrupt(pair.other(vm), InterruptCause.PEER_GONE, vm.id);
        }
        for (RegionEntry region : List.copyOf(regions.values())) {
            if (region.info.primary().equals(vm.id) || region.info.secondary().equals(vm.id)) {
                regions.remove(region.info.id().value());
                region.memfd.release();
            }
        }
        List<DaemonConnection> connections = new ArrayList<>();
        connections.add(vm.connection);
        vm.connection = null;
        for (DaemonBackend backend : vm.backends.values()) {
            connections.add(backend.connection);
            backend.connection = null;
        }
        for (DaemonConnection connection : connections) {
            if (connection != null) {
                connection.event(WireLayout.STATE, new FrameChannel.Writer().u8(VmState.DESTROYED.ordinal()));
                connection.closeAfterFlush();
            }
        }
        LOG.log(System.Logger.Level.INFO, vm.describe() + " (" + vm.id + ") " + how + "; its grants are revoked");
    }

    /** A connection ended: if it was a VM's, the VM died; if a backend's, the backend died (its pair stays). */
    synchronized void connectionClosed(DaemonConnection connection) {
        DaemonVm vm = connection.vm;
        DaemonBackend backend = connection.backend;
        if (backend != null) {
            if (backend.connection == connection) {
                backend.connection = null;
                backendDied(backend);
            }
            return;
        }
        if (vm != null && vm.connection == connection && vms.get(vm.id) == vm) {
            vm.connection = null;
            destroyLocked(vm, "died (its process " + vm.pid + " closed its connection)");
        }
    }

    /**
     * A backend process died: its pair keeps its regions, queues and doorbells for a replacement;
     * the requests queued toward it are dropped (they belonged to its device session), and the
     * secondary is told ({@link InterruptCause#BACKEND_DETACHED}).
     */
    private void backendDied(DaemonBackend backend) {
        backend.died = true;
        DaemonVm primary = backend.primary;
        DaemonPair pair = primary.pairs.get(backend.secondary);
        LOG.log(System.Logger.Level.INFO, "backend of " + primary.describe() + " for " + backend.secondary + " died (pid "
                + backend.pid + "); the pair's grants stay for a replacement");
        if (pair == null || pair.revoked) {
            return;
        }
        if (pair.dropToPrimary()) {
            interrupt(pair.secondary, InterruptCause.QUEUE_NOT_FULL, primary.id);
        }
        interrupt(pair.secondary, InterruptCause.BACKEND_DETACHED, primary.id);
    }

    synchronized Credential assignBackend(VmId primaryId, VmId secondaryId) {
        checkOpen();
        DaemonVm primary = require(primaryId);
        DaemonVm secondary = require(secondaryId);
        checkPair(primary, secondary, "assign a backend");
        DaemonBackend current = primary.backends.get(secondaryId);
        if (current != null && !current.died) {
            throw refused(RefusalReason.CONFLICT, "cannot assign a backend of " + primary.describe() + " to "
                    + secondary.describe() + ": its backend " + (current.pid == 0 ? "is assigned" : "(pid " + current.pid
                    + ") is attached") + "; a new one can be assigned once it has died");
        }
        if (current == null && primary.pairs.containsKey(secondaryId)) {
            throw refused(RefusalReason.CONFLICT, "cannot assign a backend of " + primary.describe() + " to "
                    + secondary.describe() + ": assign it before any grant between them");
        }
        DaemonBackend backend = new DaemonBackend(primary, secondaryId, Credential.random(), current != null);
        primary.backends.put(secondaryId, backend); // the dead one's credential no longer attaches
        return backend.credential;
    }

    synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (DaemonVm vm : List.copyOf(vms.values())) {
            destroyLocked(vm, "destroyed (daemon closing)");
        }
    }

    // ---- queries -------------------------------------------------------------------------------

    synchronized List<VmInfo> listVms() {
        return vms.values().stream().map(DaemonState::info).toList();
    }

    synchronized VmInfo vmInfo(VmId id) {
        return info(require(id));
    }

    private static VmInfo info(DaemonVm vm) {
        return new VmInfo(vm.id, vm.spec.name(), vm.spec.role(), vm.state, vm.spec.ramSizeBytes());
    }

    synchronized List<SharedRegionInfo> listSharedRegions() {
        return regions.values().stream().map(RegionEntry::info).toList();
    }

    // ---- grants --------------------------------------------------------------------------------

    synchronized SharedRegionInfo createSharedRegion(VmId primaryId, VmId secondaryId, String name, long sizeBytes,
                                                     long primaryGpaBase, long secondaryGpaBase) {
        if (!REGION_NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("a region name is 1 to 64 of [A-Za-z0-9._-]: '" + name + "'");
        }
        if (sizeBytes <= 0 || (sizeBytes & (PAGE - 1)) != 0) {
            throw new IllegalArgumentException("region '" + name + "': size must be a positive multiple of 4096: " + sizeBytes);
        }
        checkBase(name, "primary", primaryGpaBase, sizeBytes);
        checkBase(name, "secondary", secondaryGpaBase, sizeBytes);
        checkOpen();
        DaemonVm primary = require(primaryId);
        DaemonVm secondary = require(secondaryId);
        checkPair(primary, secondary, "share region '" + name + "'");
        checkFree(primary, name, primaryGpaBase, sizeBytes);
        checkFree(secondary, name, secondaryGpaBase, sizeBytes);
        SharedRegionInfo info = new SharedRegionInfo(new SharedRegionId(nextRegionId), name, sizeBytes, primaryId,
                secondaryId, primaryGpaBase, secondaryGpaBase);
        String memfdName = "airlock-region-" + nextRegionId + "-" + name;
        SharedFd memfd = new SharedFd(Linux.memfdCreate(memfdName, sizeBytes, Linux.MFD_CLOEXEC), memfdName);
        nextRegionId++;
        RegionEntry region = new RegionEntry(info, memfd);
        regions.put(info.id().value(), region);
        pairOf(primary, secondary);
        grantRegion(region, primary);
        grantRegion(region, secondary);
        return info;
    }

    private static void checkBase(String name, String side, long gpaBase, long sizeBytes) {
        if ((gpaBase & (PAGE - 1)) != 0 || Long.compareUnsigned(gpaBase, -sizeBytes) > 0) {
            throw new IllegalArgumentException("region '" + name + "': the " + side + " base 0x" + Long.toHexString(gpaBase)
                    + " is not page aligned or the region wraps around 2^64");
        }
    }

    /** Refuses a name taken or a range overlapping the VM's RAM or regions in its address space. */
    private void checkFree(DaemonVm vm, String name, long base, long size) {
        if (name.equals("ram") || overlaps(base, size, vm.spec.ramGpaBase(), vm.spec.ramSizeBytes())) {
            throw refused(RefusalReason.CONFLICT, "cannot share region '" + name + "': it collides with the ram of " + vm.describe());
        }
        for (RegionEntry region : regions.values()) {
            SharedRegionInfo other = region.info;
            long otherBase;
            if (other.primary().equals(vm.id)) {
                otherBase = other.primaryGpaBase();
            } else if (other.secondary().equals(vm.id)) {
                otherBase = other.secondaryGpaBase();
            } else {
                continue;
            }
            if (other.name().equals(name) || overlaps(base, size, otherBase, other.sizeBytes())) {
                throw refused(RefusalReason.CONFLICT, "cannot share region '" + name + "': it collides with region '"
                        + other.name() + "' in the address space of " + vm.describe());
            }
        }
    }

    private static boolean overlaps(long aBase, long aSize, long bBase, long bSize) {
        return Long.compareUnsigned(aBase, bBase + bSize - 1) <= 0 && Long.compareUnsigned(bBase, aBase + aSize - 1) <= 0;
    }

    synchronized void destroySharedRegion(SharedRegionId id) {
        RegionEntry region = regions.remove(id.value());
        if (region == null) {
            throw refused(RefusalReason.NOT_GRANTED, "cannot destroy " + id + ": no such shared region");
        }
        for (VmId side : List.of(region.info.primary(), region.info.secondary())) {
            DaemonVm vm = vms.get(side);
            DaemonConnection connection = vm == null ? null
                    : connectionFor(vm, side.equals(region.info.primary()) ? region.info.secondary() : region.info.primary());
            if (connection != null) {
                connection.event(WireLayout.REGION_REVOKED, new FrameChannel.Writer().i64(id.value()));
            }
        }
        region.memfd.release();
    }

    synchronized void connectMessageQueues(VmId primaryId, VmId secondaryId, int depth) {
        if (depth < 2 || depth > 65_536) {
            throw new IllegalArgumentException("a message queue depth is in [2, 65536]: " + depth);
        }
        if ((long) depth * config.maxMessageBytes() > MAX_QUEUE_BYTES) {
            throw new IllegalArgumentException("a message queue of " + depth + " messages of " + config.maxMessageBytes()
                    + " bytes exceeds " + MAX_QUEUE_BYTES + " bytes");
        }
        checkOpen();
        DaemonVm primary = require(primaryId);
        DaemonVm secondary = require(secondaryId);
        checkPair(primary, secondary, "connect message queues");
        DaemonPair pair = pairOf(primary, secondary);
        if (pair.toPrimary != null) {
            throw refused(RefusalReason.CONFLICT, "cannot connect message queues between " + primary.describe() + " and "
                    + secondary.describe() + ": they are already connected");
        }
        pair.depth = depth;
        pair.toPrimary = new ArrayDeque<>();
        pair.toSecondary = new ArrayDeque<>();
    }

    synchronized void connectDoorbells(VmId primaryId, VmId secondaryId) {
        checkOpen();
        DaemonVm primary = require(primaryId);
        DaemonVm secondary = require(secondaryId);
        checkPair(primary, secondary, "connect doorbells");
        DaemonPair pair = pairOf(primary, secondary);
        if (pair.doorbellPage != null) {
            throw refused(RefusalReason.CONFLICT, "cannot connect doorbells between " + primary.describe() + " and "
                    + secondary.describe() + ": they are already connected");
        }
        String name = "airlock-doorbell-" + primary.id.value() + "-" + secondary.id.value();
        int page = Linux.memfdCreate(name, DoorbellPageLayout.PAGE_LENGTH, Linux.MFD_CLOEXEC);
        int toPrimary = -1;
        try {
            toPrimary = Linux.eventfd(0, Linux.EFD_CLOEXEC);
            int toSecondary = Linux.eventfd(0, Linux.EFD_CLOEXEC);
            pair.doorbellPage = new SharedFd(page, name);
            pair.eventToPrimary = new SharedFd(toPrimary, name + "-to-primary");
            pair.eventToSecondary = new SharedFd(toSecondary, name + "-to-secondary");
        } catch (RuntimeException e) {
            Linux.close(page);
            if (toPrimary >= 0) {
                Linux.close(toPrimary);
            }
            throw e;
        }
        grantDoorbells(pair, primary);
        grantDoorbells(pair, secondary);
    }

    private static DaemonPair pairOf(DaemonVm primary, DaemonVm secondary) {
        DaemonPair pair = primary.pairs.get(secondary.id);
        if (pair == null) {
            pair = new DaemonPair(primary, secondary);
            primary.pairs.put(secondary.id, pair);
            secondary.pairs.put(primary.id, pair);
            linked(primary, secondary);
            linked(secondary, primary);
        }
        return pair;
    }

    private static void checkPair(DaemonVm primary, DaemonVm secondary, String action) {
        if (primary == secondary) {
            throw refused(RefusalReason.WRONG_VM, "cannot " + action + " between " + primary.describe() + " and itself");
        }
        if (primary.spec.role() != VmRole.PRIMARY || secondary.spec.role() != VmRole.SECONDARY) {
            throw refused(RefusalReason.WRONG_VM, "cannot " + action + " between " + primary.describe() + " ("
                    + primary.spec.role() + ") and " + secondary.describe() + " (" + secondary.spec.role()
                    + "): the first must be the primary and the second a secondary");
        }
    }

    // ---- VM processes ------------------------------------------------------------------------

    /**
     * Binds a connection to the VM a credential names, queues the response and then every grant the
     * VM already holds. The credential is bound to the first pid that presents it.
     */
    synchronized DaemonVm attach(byte[] credential, int pid, DaemonConnection connection, long requestId) {
        DaemonVm vm = vms.values().stream().filter(v -> v.credential.matches(credential)).findFirst().orElse(null);
        if (vm == null) {
            DaemonBackend backend = vms.values().stream().flatMap(v -> v.backends.values().stream())
                    .filter(b -> b.credential.matches(credential)).findFirst().orElse(null);
            if (backend != null) {
                attachBackend(backend, pid, connection, requestId);
                return backend.primary;
            }
            throw refused(RefusalReason.NOT_GRANTED, "pid " + pid + " may not attach: no vm holds that credential");
        }
        if (vm.pid != 0 && vm.pid != pid) {
            throw refused(RefusalReason.NOT_GRANTED, "pid " + pid + " may not attach as " + vm.describe()
                    + ": its credential is bound to pid " + vm.pid);
        }
        if (vm.connection != null) {
            throw refused(RefusalReason.CONFLICT, "pid " + pid + " may not attach as " + vm.describe() + ": it is attached");
        }
        vm.pid = pid;
        vm.connection = connection;
        connection.respond(requestId, new FrameChannel.Writer().u8(WireLayout.STATUS_OK).i32(vm.id.value())
                .string(vm.spec.name()).u8(vm.spec.role().ordinal()).u8(vm.state.ordinal()).i64(vm.spec.ramSizeBytes())
                .i64(vm.spec.ramGpaBase()).i32(config.maxMessageBytes()).i32(0));
        handOver(vm, null);
        LOG.log(System.Logger.Level.INFO, vm.describe() + " (" + vm.id + ") attached from pid " + pid);
        return vm;
    }

    private void attachBackend(DaemonBackend backend, int pid, DaemonConnection connection, long requestId) {
        DaemonVm vm = backend.primary;
        if (backend.died) {
            throw refused(RefusalReason.NOT_GRANTED, "pid " + pid + " may not attach as the backend of " + vm.describe()
                    + " for " + backend.secondary + ": that backend died; a new one must be assigned");
        }
        if (backend.pid != 0 && backend.pid != pid) {
            throw refused(RefusalReason.NOT_GRANTED, "pid " + pid + " may not attach as the backend of " + vm.describe()
                    + " for " + backend.secondary + ": its credential is bound to pid " + backend.pid);
        }
        if (backend.connection != null) {
            throw refused(RefusalReason.CONFLICT, "pid " + pid + " may not attach as the backend of " + vm.describe()
                    + " for " + backend.secondary + ": it is attached");
        }
        backend.pid = pid;
        backend.connection = connection;
        connection.backend = backend;
        connection.respond(requestId, new FrameChannel.Writer().u8(WireLayout.STATUS_OK).i32(vm.id.value())
                .string(vm.spec.name()).u8(vm.spec.role().ordinal()).u8(vm.state.ordinal()).i64(0)
                .i64(0).i32(config.maxMessageBytes()).i32(backend.secondary.value()));
        DaemonPair pair = vm.pairs.get(backend.secondary);
        if (backend.replacement && pair != null && !pair.revoked && pair.dropToPrimary()) {
            // sent while no backend was attached: requests to no device session
            interrupt(pair.secondary, InterruptCause.QUEUE_NOT_FULL, vm.id);
        }
        handOver(vm, backend.secondary);
        DaemonVm secondary = vms.get(backend.secondary);
        if (secondary != null && (pair == null || !pair.revoked)) {
            interrupt(secondary, InterruptCause.BACKEND_ATTACHED, vm.id);
        }
        LOG.log(System.Logger.Level.INFO, "backend of " + vm.describe() + " for " + backend.secondary + " attached from pid "
                + pid + (backend.replacement ? " (a replacement)" : ""));
    }

    /** Queues every grant {@code vm} holds (toward {@code only}, if not null) to the connection that receives it. */
    private void handOver(DaemonVm vm, VmId only) {
        for (RegionEntry region : regions.values()) {
            boolean primary = region.info.primary().equals(vm.id);
            if (!primary && !region.info.secondary().equals(vm.id)) {
                continue;
            }
            VmId other = primary ? region.info.secondary() : region.info.primary();
            if (only == null ? !vm.backends.containsKey(other) : other.equals(only)) {
                grantRegion(region, vm);
            }
        }
        for (DaemonPair pair : vm.pairs.values()) {
            VmId other = pair.other(vm).id;
            if (only == null ? vm.backends.containsKey(other) : !other.equals(only)) {
                continue;
            }
            if (!pair.revoked) {
                linked(vm, pair.other(vm));
            }
            grantDoorbells(pair, vm);
            ArrayDeque<byte[]> inbound = pair.inbound(vm);
            if (!pair.revoked && inbound != null && !inbound.isEmpty()) {
                interrupt(vm, InterruptCause.MESSAGE_AVAILABLE, pair.other(vm).id);
            }
            DaemonBackend backend = pair.primary.backends.get(pair.secondary.id);
            if (!pair.revoked && vm == pair.secondary && backend != null && backend.died) {
                interrupt(vm, InterruptCause.BACKEND_DETACHED, pair.primary.id); // a secondary attaching late
            }
        }
    }

    synchronized SendResult send(DaemonVm from, DaemonBackend scope, VmId peer, byte[] message) {
        DaemonPair pair = checkedPair(from, scope, peer, "send to", "message queue");
        ArrayDeque<byte[]> queue = pair.inbound(pair.other(from));
        if (queue == null) {
            throw notGranted(from, pair.other(from), "send to", "message queue");
        }
        if (message.length > config.maxMessageBytes()) {
            throw refused(RefusalReason.MESSAGE_TOO_LARGE, from.describe() + " may not send " + message.length + " bytes to "
                    + pair.other(from).describe() + ": messages are at most " + config.maxMessageBytes() + " bytes");
        }
        if (queue.size() >= pair.depth) {
            return SendResult.FULL;
        }
        queue.addLast(message);
        if (queue.size() == 1) {
            interrupt(pair.other(from), InterruptCause.MESSAGE_AVAILABLE, from.id);
        }
        return SendResult.OK;
    }

    /** The oldest message from {@code peer}, or null if none. */
    synchronized byte[] receive(DaemonVm self, DaemonBackend scope, VmId peer) {
        DaemonPair pair = checkedPair(self, scope, peer, "receive from", "message queue");
        ArrayDeque<byte[]> queue = pair.inbound(self);
        if (queue == null) {
            throw notGranted(self, pair.other(self), "receive from", "message queue");
        }
        boolean wasFull = queue.size() >= pair.depth;
        byte[] message = queue.pollFirst();
        if (message != null && wasFull) {
            interrupt(pair.other(self), InterruptCause.QUEUE_NOT_FULL, self.id);
        }
        return message;
    }

    /** Throws the refusal a doorbell call toward {@code peer} earns, if any. */
    synchronized void checkDoorbell(DaemonVm self, DaemonBackend scope, VmId peer, String verb) {
        DaemonPair pair = checkedPair(self, scope, peer, verb, "doorbell");
        if (pair.doorbellPage == null) {
            throw notGranted(self, pair.other(self), verb, "doorbell");
        }
    }

    private DaemonPair checkedPair(DaemonVm self, DaemonBackend scope, VmId peer, String verb, String resource) {
        Objects.requireNonNull(peer, "peer");
        if (self.state != VmState.RUNNING) {
            throw refused(RefusalReason.NOT_RUNNING, self.describe() + " may not " + verb + " " + peer + ": "
                    + self.describe() + " is " + self.state);
        }
        if (scope != null && !scope.secondary.equals(peer)) {
            throw refused(RefusalReason.NOT_GRANTED, "the backend of " + self.describe() + " for " + scope.secondary
                    + " may not " + verb + " " + peer + ": it serves " + scope.secondary + " only");
        }
        if (scope == null && self.backends.containsKey(peer)) {
            throw refused(RefusalReason.NOT_GRANTED, self.describe() + " may not " + verb + " " + peer
                    + ": a backend process serves that vm");
        }
        DaemonPair pair = self.pairs.get(peer);
        if (pair == null) {
            String refused = self.describe() + " may not " + verb + " ";
            if (peer.equals(self.id)) {
                throw refused(RefusalReason.WRONG_VM, refused + "itself");
            }
            DaemonVm other = vms.get(peer);
            if (other == null) {
                throw refused(RefusalReason.NO_SUCH_VM, refused + peer + ": no such vm");
            }
            if (other.spec.role() == VmRole.SECONDARY && self.spec.role() == VmRole.SECONDARY) {
                throw refused(RefusalReason.WRONG_VM, refused + other.describe()
                        + ": both are secondaries, and a secondary talks only to the primary");
            }
            throw notGranted(self, other, verb, resource);
        }
        if (pair.revoked) {
            throw refused(RefusalReason.REVOKED, self.describe() + " may not " + verb + " " + pair.other(self).describe()
                    + " (" + peer + "): the grant was revoked when that vm was destroyed");
        }
        return pair;
    }

    private static HypervisorRefusedException notGranted(DaemonVm self, DaemonVm peer, String verb, String resource) {
        return refused(RefusalReason.NOT_GRANTED, self.describe() + " may not " + verb + " " + peer.describe()
                + ": no " + resource + " between them");
    }

    // ---- helpers -------------------------------------------------------------------------------

    private DaemonVm require(VmId id) {
        Objects.requireNonNull(id, "id");
        DaemonVm vm = vms.get(id);
        if (vm == null) {
            throw refused(RefusalReason.NO_SUCH_VM, "no such vm: " + id);
        }
        return vm;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("the hypervisor daemon is closed");
        }
    }

    private static HypervisorRefusedException refused(RefusalReason reason, String message) {
        return new HypervisorRefusedException(reason, message);
    }
}
