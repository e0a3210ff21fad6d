package dev.airlock.transport;

import dev.airlock.hypervisor.InProcessHypervisor;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.VmState;

import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** A primary with a device host, and secondaries with driver hosts, on the in-process runtime. */
final class TransportWorld implements AutoCloseable {
    static final long GUEST_RAM = 4L << 20;
    static final long REGION_BYTES = 2L << 20;
    static final long HOST_REGION_BASE = 0x1_0000_0000L;
    static final long GUEST_REGION_BASE = 0x8000_0000L;

    final InProcessHypervisor hypervisor = new InProcessHypervisor();
    final VmId hostId = hypervisor.createVm(VmSpec.primary("host", 1L << 20));
    final VmContext host = hypervisor.context(hostId);
    final DeviceHost deviceHost;
    private final List<AutoCloseable> closeables = new ArrayList<>();
    private int regions;

    /** A secondary. */
    record Guest(String name, VmId id, VmContext vm, DriverHost driverHost) {
        MemorySegment ram() {
            return vm.addressSpace().translate(0, GUEST_RAM);
        }
    }

    /** A device served to a guest, with the driver side opened. */
    record Echo(Guest guest, SharedRegionInfo region, int slot, EchoDevice device, DriverTransport transport,
                VirtioFrontend frontend) {
        EchoDriver driver() {
            return new EchoDriver(frontend, guest.ram(), 0);
        }
    }

    TransportWorld() {
        this(PollingPolicy.DEFAULT);
    }

    TransportWorld(PollingPolicy pollingPolicy) {
        deviceHost = new DeviceHost(host, pollingPolicy);
        hypervisor.startVm(hostId);
    }

    /** A secondary connected to the host, with a driver host (timeout as given), or raw if timeout is null. */
    Guest guest(String name, Duration timeout) {
        VmId id = hypervisor.createVm(VmSpec.secondary(name, GUEST_RAM));
        hypervisor.connectMessageQueues(hostId, id, 64);
        hypervisor.connectDoorbells(hostId, id);
        hypervisor.startVm(id);
        VmContext vm = hypervisor.context(id);
        DriverHost driverHost = timeout == null ? null : new DriverHost(vm, timeout);
        return new Guest(name, id, vm, driverHost);
    }

    SharedRegionInfo region(Guest guest, String name) {
        int n = regions++;
        return hypervisor.createSharedRegion(hostId, guest.id(), guest.name() + "." + name, REGION_BYTES,
                HOST_REGION_BASE + n * 0x100_0000L, GUEST_REGION_BASE + n * 0x100_0000L);
    }

    /** Serves a new echo device in {@code slot} of {@code guest} and opens its driver side. */
    Echo echo(TransportKind kind, Guest guest, int slot) {
        return echo(kind, guest, slot, NotificationMode.DOORBELL, new EchoDevice());
    }

    /** Serves {@code device} in {@code slot} of {@code guest}, notified as {@code mode} says, and opens its driver side. */
    Echo echo(TransportKind kind, Guest guest, int slot, NotificationMode mode, EchoDevice device) {
        SharedRegionInfo region = region(guest, "echo" + slot);
        deviceHost.addDevice(kind, region, slot, device, mode);
        DriverTransport transport = guest.driverHost().open(kind, region.id(), slot);
        VirtioFrontend frontend = new VirtioFrontend(transport, guest.vm().addressSpace());
        closeables.add(frontend);
        return new Echo(guest, region, slot, device, transport, frontend);
    }

    boolean hostRunning() {
        return hypervisor.vmInfo(hostId).state() == VmState.RUNNING;
    }

    @Override
    public void close() {
        for (AutoCloseable c : closeables) {
            try {
                c.close();
            } catch (Exception ignored) {
                // best effort
            }
        }
        try {
            deviceHost.close();
        } finally {
            hypervisor.close();
        }
    }
}
