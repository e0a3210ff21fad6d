package dev.airlock.cli.machine;

import dev.airlock.devices.console.ConsoleEndpoint;
import dev.airlock.hypervisor.InProcessHypervisor;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.transport.DeviceHost;
import dev.airlock.transport.DriverHost;
import dev.airlock.transport.VirtioFrontend;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * The demo's machine on the in-process runtime: a hypervisor, a primary VM serving the backends,
 * and one secondary VM with a frontend per device. Each device gets its own shared region, at
 * {@link #primaryBase} in the primary and {@link #secondaryBase} in the secondary.
 */
public final class EmbeddedMachine implements AutoCloseable {
    /** The largest device region. */
    public static final long MAX_REGION_BYTES = 1L << 30;

    private final InProcessHypervisor hypervisor = new InProcessHypervisor();
    private final VmId primary;
    private final VmId secondary;
    private final DeviceHost deviceHost;
    private final DriverHost driverHost;
    private final List<ServedDevice> served = new ArrayList<>();
    private final List<GuestWorkload.GuestDevice> guestDevices = new ArrayList<>();

    /**
     * Where a device's region sits in the primary.
     *
     * @param slot the device slot
     * @return a GPA above any RAM
     */
    public static long primaryBase(int slot) {
        return 0x10_0000_0000L + ((long) slot << 30);
    }

    /**
     * Where a device's region sits in the secondary.
     *
     * @param slot the device slot
     * @return a GPA above any RAM
     */
    public static long secondaryBase(int slot) {
        return 0x8_0000_0000L + ((long) slot << 30);
    }

    /**
     * Starts the machine.
     *
     * @param secondaryName  the secondary's name
     * @param secondaryRam   its private RAM
     * @param specs          its devices
     * @param consoles       makes console endpoints
     */
    public EmbeddedMachine(String secondaryName, long secondaryRam, List<DeviceSpec> specs,
                           Function<DeviceSpec, ConsoleEndpoint> consoles) {
        boolean ok = false;
        try {
            primary = hypervisor.createVm(VmSpec.primary("host", 16L << 20));
            secondary = hypervisor.createVm(VmSpec.secondary(secondaryName, secondaryRam));
            hypervisor.connectMessageQueues(primary, secondary, 256);
            hypervisor.connectDoorbells(primary, secondary);
            hypervisor.startVm(primary);
            hypervisor.startVm(secondary);
            deviceHost = new DeviceHost(hypervisor.context(primary));
            VmContext guest = hypervisor.context(secondary);
            driverHost = new DriverHost(guest, Duration.ofSeconds(5));
            for (DeviceSpec spec : specs) {
                if (spec.regionBytes() > MAX_REGION_BYTES) {
                    throw new IllegalArgumentException(spec + ": region larger than " + ByteSize.format(MAX_REGION_BYTES));
                }
                SharedRegionInfo region = hypervisor.createSharedRegion(primary, secondary, spec.regionName(secondaryName),
                        spec.regionBytes(), primaryBase(spec.slot()), secondaryBase(spec.slot()));
                ServedDevice device = ServedDevice.create(spec, consoles);
                served.add(device);
                deviceHost.addDevice(spec.transport(), region, spec.slot(), device.model());
                VirtioFrontend frontend = new VirtioFrontend(driverHost.open(spec.transport(), region.id(), spec.slot()),
                        guest.addressSpace());
                guestDevices.add(new GuestWorkload.GuestDevice(spec, frontend));
            }
            ok = true;
        } finally {
            if (!ok) {
                close();
            }
        }
    }

    /**
     * The secondary's devices, driver side.
     *
     * @return the devices
     */
    public List<GuestWorkload.GuestDevice> guestDevices() {
        return guestDevices;
    }

    /**
     * The backends.
     *
     * @return the served devices
     */
    public List<ServedDevice> served() {
        return served;
    }

    /**
     * The secondary's VM context (its address space holds its private RAM at GPA 0).
     *
     * @return the context
     */
    public VmContext secondary() {
        return hypervisor.context(secondary);
    }

    @Override
    public void close() {
        for (GuestWorkload.GuestDevice d : guestDevices) {
            try {
                d.frontend().close();
            } catch (RuntimeException ignored) {
                // best effort: the device may be broken
            }
        }
        if (driverHost != null) {
            driverHost.close();
        }
        if (deviceHost != null) {
            deviceHost.close();
        }
        for (ServedDevice d : served) {
            try {
                d.close();
            } catch (RuntimeException ignored) {
                // best effort
            }
        }
        hypervisor.close();
    }
}
