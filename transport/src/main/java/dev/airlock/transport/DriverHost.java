package dev.airlock.transport;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.Interrupt;
import dev.airlock.hypervisor.SharedRegionId;
import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;
import dev.airlock.virtio.VirtioProtocolException;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The driver side of the transports, in a secondary: owns the secondary's interrupt handler and
 * opens a {@link DriverTransport} per device. On each interrupt it drains the message queue
 * (msgq-mmio responses, each matched to the outstanding request of its slot; malformed or stale
 * ones are dropped and counted), reads and clears the doorbell once and hands each slot its bits,
 * and on {@code PEER_GONE} breaks every transport to that peer. On {@code BACKEND_DETACHED} (the
 * backend process serving that peer's devices died) it marks each of them
 * {@link DriverTransport#isDetached() detached}, and on {@code BACKEND_ATTACHED} makes them usable
 * again, against devices in reset state.
 */
public final class DriverHost implements AutoCloseable {
    /** The default bound on a device's answer. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(1);
    private static final RateLimitedLog LOG = new RateLimitedLog(DriverHost.class);

    private final VmContext vm;
    private final long timeoutNs;
    private final Map<VmId, DriverSlot[]> peers = new ConcurrentHashMap<>();
    /** Peers whose backend process is detached (written on the interrupt thread). */
    private final Set<VmId> detachedPeers = ConcurrentHashMap.newKeySet();
    private final MemorySegment receiveBuffer;
    private final AtomicLong protocolErrors = new AtomicLong();
    private final AtomicLong internalErrors = new AtomicLong();

    /**
     * Creates the host with the {@link #DEFAULT_TIMEOUT} and installs it as the VM's interrupt handler.
     *
     * @param vm the secondary's hypercall interface
     */
    public DriverHost(VmContext vm) {
        this(vm, DEFAULT_TIMEOUT);
    }

    /**
     * Creates the host and installs it as the VM's interrupt handler.
     *
     * @param vm      the secondary's hypercall interface
     * @param timeout how long a register access or handshake may wait for the device before the
     *                transport breaks
     */
    public DriverHost(VmContext vm, Duration timeout) {
        this.vm = Objects.requireNonNull(vm, "vm");
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be positive: " + timeout);
        }
        this.timeoutNs = timeout.toNanos();
        this.receiveBuffer = Arena.ofAuto().allocate(Math.max(vm.maxMessageBytes(), MmioMessageLayout.RESPONSE_LENGTH), 8);
        vm.setInterruptHandler(this::onInterrupt);
    }

    /**
     * Opens the driver side of a device.
     *
     * @param kind   the transport the device is served on
     * @param region the device's shared region (its peer is the device's VM)
     * @param slot   the device's slot, 0 to 7
     * @return the transport
     * @throws IllegalArgumentException if the region is not granted to this VM or the slot is out of range or open
     */
    public synchronized DriverTransport open(TransportKind kind, SharedRegionId region, int slot) {
        Objects.requireNonNull(kind, "kind");
        if (!kind.isHosted()) {
            throw new IllegalArgumentException(kind + " is not opened through a DriverHost (see TransportKind.hosted())");
        }
        if (slot < 0 || slot >= DoorbellFlagsLayout.MAX_SLOTS) {
            throw new IllegalArgumentException("slot " + slot + " outside 0.." + (DoorbellFlagsLayout.MAX_SLOTS - 1));
        }
        SharedRegionMapping mapping = vm.sharedRegions().stream().filter(m -> m.id().equals(region)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("region " + region + " is not granted to " + vm.name()));
        DriverSlot[] slots = peers.computeIfAbsent(mapping.peer(), p -> new DriverSlot[DoorbellFlagsLayout.MAX_SLOTS]);
        if (slots[slot] != null) {
            throw new IllegalArgumentException("slot " + slot + " of " + mapping.peer() + " is open");
        }
        DriverSlot transport = kind == TransportKind.MSGQ_MMIO ? new MmioDriverTransport(this, vm, mapping, slot, timeoutNs)
                : new ShmemDriverTransport(this, vm, mapping, slot, timeoutNs);
        slots[slot] = transport;
        if (detachedPeers.contains(mapping.peer())) {
            transport.markDetached(detachedReason(mapping.peer())); // until its BACKEND_ATTACHED
        }
        return transport;
    }

    synchronized void detach(DriverSlot transport) {
        DriverSlot[] slots = peers.get(transport.peer);
        if (slots != null && slots[transport.slot] == transport) {
            slots[transport.slot] = null;
        }
    }

    /**
     * Messages and flags from devices that were malformed, stale or for no open slot.
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

    private void onInterrupt(Interrupt interrupt) {
        DriverSlot[] slots = peers.get(interrupt.peer());
        try {
            switch (interrupt.cause()) {
                case MESSAGE_AVAILABLE -> drainMessages(interrupt.peer(), slots);
                case DOORBELL -> dispatchDoorbell(interrupt.peer(), slots);
                case PEER_GONE -> breakAll(slots, "device VM " + interrupt.peer() + " is gone");
                case BACKEND_DETACHED -> {
                    detachedPeers.add(interrupt.peer());
                    detachAll(slots, detachedReason(interrupt.peer()));
                }
                case BACKEND_ATTACHED -> {
                    detachedPeers.remove(interrupt.peer());
                    attachAll(slots);
                }
                case QUEUE_NOT_FULL -> { }
            }
        } catch (HypervisorRefusedException e) {
            // The device's VM went away mid-drain; its PEER_GONE follows.
        } catch (RuntimeException e) {
            internalErrors.incrementAndGet();
            LOG.warn("driver host of " + vm.name() + ": unexpected " + e + " on " + interrupt);
        }
    }

    private void drainMessages(VmId peer, DriverSlot[] slots) {
        String source = vm.name() + "<-" + peer;
        int length;
        while ((length = vm.receiveMessage(peer, receiveBuffer)) != VmContext.EMPTY) {
            try {
                MmioMessageLayout.Response response = MmioMessageLayout.decodeResponse(receiveBuffer, length, source);
                DriverSlot slot = slots != null && response.slot() < slots.length ? slots[response.slot()] : null;
                if (!(slot instanceof MmioDriverTransport mmio) || !mmio.onResponse(response)) {
                    protocolErrors.incrementAndGet();
                    LOG.warn(source + ": response " + response + " answers no outstanding request; dropped");
                }
            } catch (VirtioProtocolException e) {
                protocolErrors.incrementAndGet();
                LOG.warn("refused: " + e.fault().message());
            }
        }
    }

    private void dispatchDoorbell(VmId peer, DriverSlot[] slots) {
        long flags = vm.readAndClearDoorbell(peer);
        for (int s = 0; s < DoorbellFlagsLayout.MAX_SLOTS && flags != 0; s++) {
            int bits = DoorbellFlagsLayout.slotBits(flags, s);
            if (bits == 0) {
                continue;
            }
            DriverSlot slot = slots != null ? slots[s] : null;
            if (slot == null) {
                protocolErrors.incrementAndGet();
            } else {
                slot.onDoorbell(bits);
            }
        }
    }

    private static void breakAll(DriverSlot[] slots, String reason) {
        if (slots == null) {
            return;
        }
        for (DriverSlot s : slots) {
            if (s != null) {
                s.markBroken(reason);
            }
        }
    }

    private static String detachedReason(VmId peer) {
        return "the backend process of " + peer + " detached";
    }

    private static void detachAll(DriverSlot[] slots, String reason) {
        if (slots == null) {
            return;
        }
        for (DriverSlot s : slots) {
            if (s != null) {
                s.markDetached(reason);
            }
        }
    }

    private static void attachAll(DriverSlot[] slots) {
        if (slots == null) {
            return;
        }
        for (DriverSlot s : slots) {
            if (s != null) {
                s.markAttached();
            }
        }
    }

    /** Removes the interrupt handler and breaks every open transport. */
    @Override
    public void close() {
        vm.setInterruptHandler(null);
        for (DriverSlot[] slots : peers.values()) {
            breakAll(slots, "driver host closed");
        }
        peers.clear();
    }
}
