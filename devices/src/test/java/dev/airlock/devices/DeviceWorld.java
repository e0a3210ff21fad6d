package dev.airlock.devices;

import dev.airlock.hypervisor.InProcessHypervisor;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.transport.DeviceHost;
import dev.airlock.transport.DriverHost;
import dev.airlock.transport.DriverTransport;
import dev.airlock.transport.TransportKind;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.transport.VirtioFrontend;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * The in-process runtime with one primary (a device host) and secondaries (driver hosts), for device
 * tests: {@link #attach} serves a device model to a guest and returns the guest's frontend.
 */
public final class DeviceWorld implements AutoCloseable {
    /** Private RAM of each guest. */
    public static final long GUEST_RAM = 4L << 20;
    /** Size of each device's shared region (rings and bounce pool). */
    public static final long REGION_BYTES = 8L << 20;
    private static final long HOST_REGION_BASE = 0x1_0000_0000L;
    private static final long GUEST_REGION_BASE = 0x8000_0000L;

    private final InProcessHypervisor hypervisor = new InProcessHypervisor();
    private final VmId hostId = hypervisor.createVm(VmSpec.primary("host", 1L << 20));
    private final DeviceHost deviceHost = new DeviceHost(hypervisor.context(hostId));
    private final List<AutoCloseable> closeables = new ArrayList<>();
    private int regions;

    /** A secondary VM with its driver host. */
    public record Guest(String name, VmId id, VmContext vm, DriverHost driverHost) { }

    /** Starts the primary. */
    public DeviceWorld() {
        hypervisor.startVm(hostId);
    }

    /**
     * Creates and starts a secondary connected to the primary.
     *
     * @param name the VM name
     * @return the guest
     */
    public Guest guest(String name) {
        VmId id = hypervisor.createVm(VmSpec.secondary(name, GUEST_RAM));
        hypervisor.connectMessageQueues(hostId, id, 64);
        hypervisor.connectDoorbells(hostId, id);
        hypervisor.startVm(id);
        VmContext vm = hypervisor.context(id);
        return new Guest(name, id, vm, new DriverHost(vm, Duration.ofSeconds(2)));
    }

    /**
     * Serves {@code model} in {@code slot} of {@code guest} over {@code kind} and opens the driver side
     * (not yet initialised).
     *
     * @param kind  the transport
     * @param guest the guest
     * @param slot  the device slot, 0 to 7
     * @param model the backend
     * @return the guest's frontend, closed with the world
     */
    public VirtioFrontend attach(TransportKind kind, Guest guest, int slot, VirtioDeviceModel model) {
        int n = regions++;
        SharedRegionInfo region = hypervisor.createSharedRegion(hostId, guest.id(), guest.name() + ".dev" + slot,
                REGION_BYTES, HOST_REGION_BASE + n * 0x100_0000L, GUEST_REGION_BASE + n * 0x100_0000L);
        deviceHost.addDevice(kind, region, slot, model);
        DriverTransport transport = guest.driverHost().open(kind, region.id(), slot);
        VirtioFrontend frontend = new VirtioFrontend(transport, guest.vm().addressSpace());
        closeables.add(frontend);
        return frontend;
    }

    /**
     * The device host, for fault and status queries.
     *
     * @return the host
     */
    public DeviceHost deviceHost() {
        return deviceHost;
    }

    /**
     * The primary's id.
     *
     * @return the id
     */
    public VmId hostId() {
        return hostId;
    }

    @Override
    public void close() {
        for (AutoCloseable c : closeables.reversed()) {
            try {
                c.close();
            } catch (Exception ignored) {
                // best effort: the hypervisor below releases everything
            }
        }
        try {
            deviceHost.close();
        } finally {
            hypervisor.close();
        }
    }
}
