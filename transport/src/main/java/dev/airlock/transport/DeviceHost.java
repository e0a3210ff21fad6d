package dev.airlock.transport;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.Interrupt;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.SendResult;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.MemoryRegion;
import dev.airlock.memory.RegionKind;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioProtocolException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The device side of the transports, in the primary: owns the primary's interrupt handler and
 * serves devices to its secondaries. Each device sits in a slot (0 to
 * {@link DoorbellFlagsLayout#MAX_SLOTS} - 1) of one secondary, on one {@link TransportKind}, over
 * its own shared region.
 *
 * <p>On each interrupt the host drains: it receives every message from the peer (msgq-mmio
 * requests, each answered at once; a response that does not fit in a full queue is dropped, since
 * only a driver that does not read its answers can fill it), reads and clears the doorbell once and
 * hands each slot its bits, and on {@code PEER_GONE} resets every device of that peer. Adding a
 * device also drains once, so requests sent before the host (or the device) existed are served: a
 * backend may start after its guest, or replace a dead backend of the same pair. Nothing
 * blocks and no exception escapes to the interrupt thread: hostile input is refused and counted
 * ({@link #protocolErrors()}), anything else unexpected is counted too ({@link #internalErrors()}).
 *
 * <p>A device added in {@link NotificationMode#POLLING} gets a poller thread of its own while it is
 * active; its model is still called by one thread at a time, since the interrupt thread and the
 * poller each hold the device's lock around every call into it.
 */
public final class DeviceHost implements AutoCloseable {
    private static final RateLimitedLog LOG = new RateLimitedLog(DeviceHost.class);

    private final VmContext vm;
    private final Map<VmId, DeviceSlot[]> peers = new ConcurrentHashMap<>();
    private final MemorySegment receiveBuffer;
    private final MemorySegment sendBuffer;
    private final Arena arena = Arena.ofAuto();
    private final AtomicLong protocolErrors = new AtomicLong();
    private final AtomicLong internalErrors = new AtomicLong();
    private final AtomicLong droppedResponses = new AtomicLong();
    private final PollingPolicy pollingPolicy;
    /** Serializes the drains (the interrupt handler's and {@link #addDevice}'s catch-up): they share the buffers. */
    private final ReentrantLock drainLock = new ReentrantLock();

    /**
     * Creates the host with the {@link PollingPolicy#DEFAULT} policy for polled devices and installs
     * it as the VM's interrupt handler.
     *
     * @param vm the primary's hypercall interface
     */
    public DeviceHost(VmContext vm) {
        this(vm, PollingPolicy.DEFAULT);
    }

    /**
     * Creates the host and installs it as the VM's interrupt handler.
     *
     * @param vm            the primary's hypercall interface
     * @param pollingPolicy how the pollers of devices in {@link NotificationMode#POLLING} back off when idle
     */
    public DeviceHost(VmContext vm, PollingPolicy pollingPolicy) {
        this.vm = Objects.requireNonNull(vm, "vm");
        this.pollingPolicy = Objects.requireNonNull(pollingPolicy, "pollingPolicy");
        this.receiveBuffer = arena.allocate(Math.max(vm.maxMessageBytes(), MmioMessageLayout.REQUEST_LENGTH), 8);
        this.sendBuffer = arena.allocate(MmioMessageLayout.RESPONSE_LENGTH, 8);
        vm.setInterruptHandler(this::onInterrupt);
    }

    /**
     * Serves a device to the secondary that shares {@code region}, notified by doorbell
     * ({@link NotificationMode#DOORBELL}). The device's DMA view holds only that region (less the
     * header, for shmem-doorbell), placed at the secondary's base, so every ring and buffer address
     * the driver gives is checked against it.
     *
     * @param kind   the transport
     * @param region the device's shared region (from the control plane)
     * @param slot   the device's slot in that secondary, 0 to 7
     * @param model  the device
     * @throws IllegalArgumentException if the slot is taken or out of range, the region is not
     *                                  granted to this VM, or the model is malformed
     */
    public void addDevice(TransportKind kind, SharedRegionInfo region, int slot, VirtioDeviceModel model) {
        addDevice(kind, region, slot, model, NotificationMode.DOORBELL);
    }

    /**
     * Serves a device to the secondary that shares {@code region}, as
     * {@link #addDevice(TransportKind, SharedRegionInfo, int, VirtioDeviceModel)} does, learning of
     * available buffers as {@code mode} says. In {@link NotificationMode#POLLING} the device gets a
     * poller thread named {@code "airlock-poll-"} and the device's name while it is active.
     *
     * @param kind   the transport
     * @param region the device's shared region (from the control plane)
     * @param slot   the device's slot in that secondary, 0 to 7
     * @param model  the device
     * @param mode   doorbells or polling
     * @throws IllegalArgumentException if the slot is taken or out of range, the region is not
     *                                  granted to this VM, or the model is malformed
     */
    public synchronized void addDevice(TransportKind kind, SharedRegionInfo region, int slot, VirtioDeviceModel model,
                                       NotificationMode mode) {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(mode, "mode");
        if (!kind.isHosted()) {
            throw new IllegalArgumentException(kind + " is not served by a DeviceHost (see TransportKind.hosted())");
        }
        if (slot < 0 || slot >= DoorbellFlagsLayout.MAX_SLOTS) {
            throw new IllegalArgumentException("slot " + slot + " outside 0.." + (DoorbellFlagsLayout.MAX_SLOTS - 1));
        }
        VmId peer = region.secondary();
        DeviceSlot[] slots = peers.computeIfAbsent(peer, p -> new DeviceSlot[DoorbellFlagsLayout.MAX_SLOTS]);
        if (slots[slot] != null) {
            throw new IllegalArgumentException("slot " + slot + " of " + peer + " is taken");
        }
        SharedRegionMapping mapping = vm.sharedRegions().stream().filter(m -> m.id().equals(region.id())).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("region " + region.name() + " is not granted to " + vm.name()));
        long skip = kind == TransportKind.SHMEM_DOORBELL ? ShmemHeaderLayout.HEADER_LENGTH : 0;
        MemorySegment whole = mapping.region().segment();
        GuestAddressSpace dmaView = new GuestAddressSpace(vm.name() + ":" + region.name() + ":dma");
        dmaView.add(new MemoryRegion(region.name(), RegionKind.SHARED, region.secondaryGpaBase() + skip,
                whole.asSlice(skip)));
        String name = vm.name() + "/" + region.name() + ".slot" + slot;
        DeviceCore core = new DeviceCore(name, model, dmaView, mode, pollingPolicy);
        DeviceSlot device = kind == TransportKind.MSGQ_MMIO ? new MmioDeviceSlot(vm, peer, slot, core)
                : new ShmemDeviceSlot(vm, peer, slot, core, whole);
        core.bind(device);
        slots[slot] = device;
        catchUp(peer, slots);
    }

    /**
     * Serves what the driver sent before this device was added: a backend process that starts after
     * its guest (or replaces a dead one) finds requests and doorbell flags already waiting, whose
     * interrupts arrived before this host was the handler, or before the device was in its slot.
     */
    private void catchUp(VmId peer, DeviceSlot[] slots) {
        drainLock.lock();
        try {
            try {
                dispatchDoorbell(peer, slots);
            } catch (HypervisorRefusedException e) {
                // not running yet, or no doorbells with this peer: its interrupts will come
            }
            try {
                drainMessages(peer, slots);
            } catch (HypervisorRefusedException e) {
                // not running yet, or no message queues with this peer
            }
        } catch (RuntimeException e) {
            internalErrors.incrementAndGet();
            LOG.warn("device host of " + vm.name() + ": unexpected " + e + " catching up with " + peer);
        } finally {
            drainLock.unlock();
        }
    }

    /**
     * The status byte of a device, as the driver would read it.
     *
     * @param peer the secondary
     * @param slot the slot
     * @return the status
     * @throws IllegalArgumentException if there is no such device
     */
    public int deviceStatus(VmId peer, int slot) {
        return device(peer, slot).core.statusMachine().status();
    }

    /**
     * The most recent fault of a device since its last reset (a refused access or a reason for
     * DEVICE_NEEDS_RESET).
     *
     * @param peer the secondary
     * @param slot the slot
     * @return the fault, or null
     */
    public VirtioFault lastFault(VmId peer, int slot) {
        return device(peer, slot).core.lastFault();
    }

    /**
     * How many faults a device has recorded since it was added.
     *
     * @param peer the secondary
     * @param slot the slot
     * @return the count
     */
    public long faultCount(VmId peer, int slot) {
        return device(peer, slot).core.faultCount();
    }

    /**
     * Messages and doorbell flags refused before they reached a device (malformed, unknown slot).
     *
     * @return the count
     */
    public long protocolErrors() {
        return protocolErrors.get();
    }

    /**
     * Unexpected exceptions caught in the interrupt handler (should stay 0).
     *
     * @return the count
     */
    public long internalErrors() {
        return internalErrors.get();
    }

    /**
     * Responses dropped because the driver's message queue was full.
     *
     * @return the count
     */
    public long droppedResponses() {
        return droppedResponses.get();
    }

    private DeviceSlot device(VmId peer, int slot) {
        DeviceSlot[] slots = peers.get(peer);
        DeviceSlot d = slots != null && slot >= 0 && slot < slots.length ? slots[slot] : null;
        if (d == null) {
            throw new IllegalArgumentException("no device in slot " + slot + " of " + peer);
        }
        return d;
    }

    private void onInterrupt(Interrupt interrupt) {
        drainLock.lock();
        try {
            DeviceSlot[] slots = peers.get(interrupt.peer());
            switch (interrupt.cause()) {
                case MESSAGE_AVAILABLE -> drainMessages(interrupt.peer(), slots);
                case DOORBELL -> dispatchDoorbell(interrupt.peer(), slots);
                case PEER_GONE -> resetAll(slots);
                case QUEUE_NOT_FULL, BACKEND_DETACHED, BACKEND_ATTACHED -> { } // the last two reach secondaries only
            }
        } catch (HypervisorRefusedException e) {
            // The peer went away mid-drain; its PEER_GONE follows.
        } catch (RuntimeException e) {
            internalErrors.incrementAndGet();
            LOG.warn("device host of " + vm.name() + ": unexpected " + e + " on " + interrupt);
        } finally {
            drainLock.unlock();
        }
    }

    private void drainMessages(VmId peer, DeviceSlot[] slots) {
        String source = vm.name() + "<-" + peer;
        int length;
        while ((length = vm.receiveMessage(peer, receiveBuffer)) != VmContext.EMPTY) {
            MmioMessageLayout.Response response;
            try {
                MmioMessageLayout.Request request = MmioMessageLayout.decodeRequest(receiveBuffer, length, source);
                DeviceSlot device = slots != null && request.slot() < slots.length ? slots[request.slot()] : null;
                if (device instanceof MmioDeviceSlot mmio) {
                    mmio.core.lock.lock();
                    try {
                        response = mmio.handle(request);
                    } finally {
                        mmio.core.lock.unlock();
                    }
                } else {
                    refused(new VirtioFault(source, "msg.slot", request.slot(), "no msgq-mmio device in this slot"));
                    response = new MmioMessageLayout.Response(request.isWrite() ? MmioMessageLayout.TYPE_WRITE_RESPONSE
                            : MmioMessageLayout.TYPE_READ_RESPONSE, request.slot(), request.seq(), TransportStatus.NO_SUCH_SLOT, 0);
                }
            } catch (VirtioProtocolException e) {
                refused(e.fault());
                int slotAndSeq = MmioMessageLayout.peekSlotAndSeq(receiveBuffer, length);
                if (slotAndSeq < 0) {
                    continue; // too short to address an answer to
                }
                int type = (receiveBuffer.get(java.lang.foreign.ValueLayout.JAVA_BYTE, MmioMessageLayout.TYPE_OFFSET) & 0xff)
                        == MmioMessageLayout.TYPE_WRITE ? MmioMessageLayout.TYPE_WRITE_RESPONSE : MmioMessageLayout.TYPE_READ_RESPONSE;
                response = new MmioMessageLayout.Response(type, slotAndSeq >>> 16, slotAndSeq & 0xffff, TransportStatus.MALFORMED, 0);
            }
            MmioMessageLayout.encodeResponse(sendBuffer, response);
            if (vm.sendMessage(peer, sendBuffer) != SendResult.OK) {
                droppedResponses.incrementAndGet();
                LOG.warn(source + ": message queue full, response to seq " + response.seq() + " dropped");
            }
        }
    }

    private void dispatchDoorbell(VmId peer, DeviceSlot[] slots) {
        long flags = vm.readAndClearDoorbell(peer);
        for (int s = 0; s < DoorbellFlagsLayout.MAX_SLOTS && flags != 0; s++) {
            int bits = DoorbellFlagsLayout.slotBits(flags, s);
            if (bits == 0) {
                continue;
            }
            DeviceSlot device = slots != null ? slots[s] : null;
            if (device == null) {
                refused(new VirtioFault(vm.name() + "<-" + peer, "doorbell", flags, "flags for empty slot " + s));
            } else {
                device.core.lock.lock();
                try {
                    device.onDoorbell(bits);
                } finally {
                    device.core.lock.unlock();
                }
            }
        }
    }

    private void refused(VirtioFault fault) {
        protocolErrors.incrementAndGet();
        LOG.warn("refused: " + fault.message());
    }

    private static void resetAll(DeviceSlot[] slots) {
        if (slots == null) {
            return;
        }
        for (DeviceSlot s : slots) {
            if (s != null) {
                s.core.lock.lock();
                try {
                    s.core.peerGone(); // stops and joins a poller before the handler returns and the region goes
                } finally {
                    s.core.lock.unlock();
                }
            }
        }
    }

    /**
     * Removes the interrupt handler and resets every device, which stops and joins their pollers.
     * Call when the primary is quiescing: a handler already running finishes concurrently with the
     * resets (each device's lock keeps them apart).
     */
    @Override
    public void close() {
        vm.setInterruptHandler(null);
        for (DeviceSlot[] slots : peers.values()) {
            resetAll(slots);
        }
        peers.clear();
    }
}
