package dev.airlock.cli;

import dev.airlock.cli.machine.DeviceSpec;
import dev.airlock.cli.machine.EmbeddedMachine;
import dev.airlock.cli.machine.GuestWorkload;
import dev.airlock.cli.machine.VhostUserDevice;
import dev.airlock.cli.machine.VhostUserDeviceSpec;
import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.VmState;
import dev.airlock.hypervisor.process.RemoteVmContext;
import dev.airlock.transport.DriverHost;
import dev.airlock.transport.DriverTransport;
import dev.airlock.transport.TransportException;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.vhostuser.VhostUserDriverTransport;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code airlock vm run NAME}: this process becomes the secondary VM NAME and runs the demo
 * application on the devices its backend serves: the VM's private RAM is this process's memory,
 * its devices are found by their shared regions. With {@code --device blk,vhost-user=SOCKET} this
 * process is also the VM's VMM toward a vhost-user backend: it adds a memfd region to the VM's
 * address space, above everything else there, and shares only that region with the backend.
 */
@Command(name = "run", mixinStandardHelpOptions = true, description = {
    "Runs a secondary VM's application in this process (the VM must have been",
    "created).",
    "",
    "Attaches with the VM's credential, waits until the VM is started and its",
    "devices appear, then writes random data to each block device and reads it",
    "back (CRC32C), prints a line through the console and reads entropy, and",
    "prints a report. Exit 0 when everything checked out.",
    "",
    "With --device blk,vhost-user=SOCKET this process also acts as the VM's VMM",
    "toward a vhost-user-blk backend listening on SOCKET (qemu-storage-daemon, or",
    "'airlock backend blk --vhost-user SOCKET'). The backend is sent one memfd",
    "region holding the rings and bounce buffers, never the VM's private memory.",
    "With --device given, --devices defaults to 0 (no hypervisor device needed).",
    "",
    "Examples:",
    "  airlock vm run guest1 --devices 3",
    "  airlock vm run guest1 --device blk,vhost-user=/tmp/qsd.sock --data 64M"})
final class GuestCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;
    @Mixin
    VmCommand.SocketOption socket = new VmCommand.SocketOption();

    @Parameters(paramLabel = "NAME")
    String name;

    @Option(names = "--devices", paramLabel = "N", description = "Wait for at least N devices from the VM's hypervisor backend "
            + "(default: 1, or 0 with --device).")
    Integer devices;

    @Option(names = "--device", paramLabel = "SPEC", description = "A device to drive over vhost-user, as this VM's VMM: "
            + "blk,vhost-user=SOCKET[,region=SIZE][,reconnect=SECONDS] (region: rings and bounce pool shared with the backend, "
            + "default 32M; reconnect: how long to wait for a restarted backend and resubmit, default 0). Repeatable.")
    List<String> vhostUserDevices = new ArrayList<>();

    @Option(names = "--data", defaultValue = "256M", converter = Sizes.class, description = "Data to write to each block device and read back (default: ${DEFAULT-VALUE}).")
    long dataBytes;

    @Option(names = "--depth", defaultValue = "16", description = "Block requests in flight (default: ${DEFAULT-VALUE}).")
    int depth;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the data (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--timeout", defaultValue = "60", description = "Seconds to wait for the VM to start and its devices to appear (default: ${DEFAULT-VALUE}).")
    long timeoutSeconds;

    @Override
    public Integer call() throws Exception {
        List<VhostUserDeviceSpec> vhostUser = vhostUserDevices.stream().map(VhostUserDeviceSpec::parse).toList();
        int wanted = devices != null ? devices : vhostUser.isEmpty() ? 1 : 0;
        if (wanted < 0) {
            throw new IllegalArgumentException("--devices must be 0 or more: " + wanted);
        }
        DaemonAddress address = socket.address();
        PrintWriter out = spec.commandLine().getOut();
        GuestWorkload.Options options = new GuestWorkload.Options(dataBytes, depth, seed,
                "hello from " + name + " through virtio-console");
        try (RemoteVmContext vm = RemoteVmContext.attach(address.socket(), address.loadCredential(name));
             DriverHost driverHost = new DriverHost(vm, DriverHost.DEFAULT_TIMEOUT)) {
            long deadline = System.nanoTime() + Duration.ofSeconds(timeoutSeconds).toNanos();
            if (!vm.awaitState(VmState.RUNNING, Duration.ofSeconds(timeoutSeconds))) {
                throw new IllegalStateException(name + " was not started within " + timeoutSeconds + " s (airlock vm start " + name + ")");
            }
            long ram = vm.addressSpace().regionOf(0, 1).sizeBytes();
            if (ram < options.ramBytes()) {
                throw new IllegalArgumentException(name + " has " + Sizes.format(ram) + " of RAM; the application needs "
                        + Sizes.format(options.ramBytes()));
            }
            List<SharedRegionMapping> found = awaitDevices(vm, wanted, deadline);
            List<GuestWorkload.GuestDevice> guestDevices = new ArrayList<>();
            List<VhostUserDevice> vhostUserOpen = new ArrayList<>();
            try {
                for (SharedRegionMapping m : found) {
                    DeviceSpec d = DeviceSpec.fromRegionName(name, m.name(), m.sizeBytes());
                    guestDevices.add(new GuestWorkload.GuestDevice(d,
                            new VirtioFrontend(openWhenPresent(driverHost, d, m, deadline), vm.addressSpace())));
                }
                for (VhostUserDeviceSpec d : vhostUser) {
                    VhostUserDevice device = openVhostUser(vm, d, vhostUserOpen.size(), deadline);
                    vhostUserOpen.add(device);
                    guestDevices.add(device.guestDevice());
                }
                if (guestDevices.isEmpty()) {
                    throw new IllegalArgumentException(name + " has no devices (start its backend, or give --device blk,vhost-user=SOCKET)");
                }
                out.printf("%s: running on %s%n", name, guestDevices.stream().map(GuestWorkload.GuestDevice::name).toList());
                out.flush();
                GuestWorkload.Result result = GuestWorkload.run(guestDevices, vm.addressSpace(), 0, options);
                result.report().forEach(out::println);
                address.write(address.statusFile(name, "vm"), String.join("\n", result.report()) + "\n");
                out.println(result.passed() ? "  result            PASS" : "  result            FAIL");
                return result.passed() ? 0 : Airlock.EXIT_CHECK_FAILED;
            } finally {
                closeAll(guestDevices, vhostUserOpen);
            }
        }
    }

    /**
     * Closes every frontend (which closes its transport), then each vhost-user device's region. Best
     * effort, as the VM exits: a device that is broken does not keep the others open.
     */
    private static void closeAll(List<GuestWorkload.GuestDevice> guestDevices, List<VhostUserDevice> vhostUser) {
        for (GuestWorkload.GuestDevice d : guestDevices) {
            try {
                d.frontend().close();
            } catch (RuntimeException ignored) {
                // best effort: the device may be broken
            }
        }
        for (VhostUserDevice d : vhostUser) {
            try {
                d.close(); // after its frontend: the region held the rings and the bounce pool
            } catch (RuntimeException ignored) {
                // best effort: the region is removed and unmapped all the same
            }
        }
    }

    /**
     * Connects to a vhost-user backend as this VM's VMM, once its socket exists. The device's region
     * goes above every region in the VM's address space and above the slots the hypervisor's device
     * regions use, so a backend that grants a region later does not collide with it.
     */
    private VhostUserDevice openVhostUser(RemoteVmContext vm, VhostUserDeviceSpec d, int index, long deadline)
            throws InterruptedException {
        while (!Files.exists(d.socket())) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(d + ": no backend listens on " + d.socket() + " after " + timeoutSeconds + " s");
            }
            Thread.sleep(20);
        }
        long gpa = VhostUserDevice.nextFreeBase(vm.addressSpace(), EmbeddedMachine.secondaryBase(DeviceSpec.MAX_SLOTS));
        return VhostUserDevice.open(d, vm.addressSpace(), name + ".vhost-user." + index, gpa, VhostUserDriverTransport.DEFAULT_TIMEOUT);
    }

    /**
     * Opens a device's transport once its backend answers: a region is granted to both sides at once,
     * so the guest may see it a moment before the backend serves it (or long before, when the backend
     * starts later). Until then a probe times out or finds no device (id 0).
     */
    private DriverTransport openWhenPresent(DriverHost driverHost, DeviceSpec d, SharedRegionMapping m, long deadline)
            throws InterruptedException {
        while (true) {
            DriverTransport t = driverHost.open(d.transport(), m.id(), d.slot());
            String why;
            try {
                int id = t.probe();
                if (id != 0) {
                    return t;
                }
                why = "no device in the slot yet";
            } catch (TransportException e) {
                why = e.getMessage();
            }
            t.close();
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(d + ": the backend does not answer: " + why);
            }
            Thread.sleep(100);
        }
    }

    /** Waits until at least {@code devices} device regions are mapped. */
    private List<SharedRegionMapping> awaitDevices(RemoteVmContext vm, int devices, long deadline) throws InterruptedException {
        while (true) {
            List<SharedRegionMapping> found = vm.sharedRegions().stream()
                    .filter(m -> DeviceSpec.fromRegionName(name, m.name(), m.sizeBytes()) != null)
                    .sorted(Comparator.comparing(SharedRegionMapping::name)).toList();
            if (found.size() >= devices) {
                return found;
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(name + " has " + found.size() + " devices after " + timeoutSeconds
                        + " s, expected " + devices + " (is its backend running? airlock backend TYPE --vm " + name + ")");
            }
            Thread.sleep(10);
        }
    }
}
