package dev.airlock.cli;

import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmInfo;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.process.RemoteHypervisor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * {@code airlock vm}: the VMs of a running hypervisor (multi-process runtime). {@code create} stores
 * the VM's credential in the daemon's state folder, where {@code airlock vm run} and
 * {@code airlock backend} find it.
 */
@Command(name = "vm", mixinStandardHelpOptions = true, description = {
    "Creates, starts, stops, lists and runs the VMs of a running 'airlock hypervisor'.",
    "",
    "A typical session (each command in its own terminal or in the background):",
    "  airlock hypervisor &",
    "  airlock vm create host --primary",
    "  airlock vm create guest1 --ram 64M",
    "  airlock backend blk --vm guest1 --image disk.raw --with console --with rng &",
    "  airlock vm start host; airlock vm start guest1",
    "  airlock vm run guest1          # the guest's application: uses the devices, prints a report"},
        subcommands = {VmCommand.Create.class, VmCommand.Start.class, VmCommand.Stop.class, VmCommand.Destroy.class,
            VmCommand.ListVms.class, GuestCommand.class})
final class VmCommand {
    /** The {@code --socket} option every subcommand takes. */
    static final class SocketOption {
        @Option(names = "--socket", description = "The hypervisor's socket (default: $XDG_RUNTIME_DIR/airlock/hypervisor.sock, else /tmp/airlock-$USER/hypervisor.sock).")
        Path socket;

        DaemonAddress address() {
            return DaemonAddress.of(socket);
        }
    }

    @Command(name = "create", mixinStandardHelpOptions = true, description = "Creates a VM (secondary unless --primary) and stores its credential.")
    static final class Create implements java.util.concurrent.Callable<Integer> {
        @Spec
        CommandSpec spec;
        @picocli.CommandLine.Mixin
        SocketOption socket = new SocketOption();
        @Parameters(paramLabel = "NAME", description = "The VM's name: letters, digits, '_', '.', '-'.")
        String name;
        @Option(names = "--primary", description = "The primary VM (it owns the devices; one per hypervisor).")
        boolean primary;
        @Option(names = "--ram", defaultValue = "64M", converter = Sizes.class, description = "Private RAM (default: ${DEFAULT-VALUE}).")
        long ramBytes;

        @Override
        public Integer call() {
            DaemonAddress address = socket.address();
            DaemonAddress.checkName(name);
            try (DaemonAddress.Control control = address.control()) {
                RemoteHypervisor hypervisor = control.hypervisor();
                VmSpec vmSpec = primary ? VmSpec.primary(name, ramBytes) : VmSpec.secondary(name, ramBytes);
                VmId id = hypervisor.createVm(vmSpec);
                address.saveCredential(name, hypervisor.credential(id));
                spec.commandLine().getOut().printf("created %s VM %s (%s, %s RAM); credential in %s%n",
                        primary ? "primary" : "secondary", name, id, Sizes.format(ramBytes), address.credentialFile(name));
            }
            return 0;
        }
    }

    /** A subcommand acting on one named VM: connects, finds the VM, acts, prints what it did. */
    abstract static class OnNamedVm implements java.util.concurrent.Callable<Integer> {
        @Spec
        CommandSpec spec;
        @picocli.CommandLine.Mixin
        SocketOption socket = new SocketOption();
        @Parameters(paramLabel = "NAME")
        String name;

        /** Acts on the VM; returns the past-tense verb for the output line. */
        abstract String act(DaemonAddress address, RemoteHypervisor hypervisor, VmId vm) throws java.io.IOException;

        @Override
        public Integer call() throws java.io.IOException {
            DaemonAddress address = socket.address();
            try (DaemonAddress.Control control = address.control()) {
                RemoteHypervisor hypervisor = control.hypervisor();
                String done = act(address, hypervisor, DaemonAddress.find(hypervisor, name).id());
                spec.commandLine().getOut().println(done + " " + name);
            }
            return 0;
        }
    }

    @Command(name = "start", mixinStandardHelpOptions = true, description = "Starts a VM (its processes wait for this).")
    static final class Start extends OnNamedVm {
        @Override
        String act(DaemonAddress address, RemoteHypervisor hypervisor, VmId vm) {
            hypervisor.startVm(vm);
            return "started";
        }
    }

    @Command(name = "stop", mixinStandardHelpOptions = true, description = "Stops a running VM (its interrupts are held until it starts again).")
    static final class Stop extends OnNamedVm {
        @Override
        String act(DaemonAddress address, RemoteHypervisor hypervisor, VmId vm) {
            hypervisor.stopVm(vm);
            return "stopped";
        }
    }

    @Command(name = "destroy", mixinStandardHelpOptions = true, description = "Destroys a VM: revokes its grants, tells its peers, removes its credential.")
    static final class Destroy extends OnNamedVm {
        @Override
        String act(DaemonAddress address, RemoteHypervisor hypervisor, VmId vm) throws java.io.IOException {
            hypervisor.destroyVm(vm);
            Files.deleteIfExists(address.credentialFile(name));
            return "destroyed";
        }
    }

    @Command(name = "list", mixinStandardHelpOptions = true, description = "Lists the VMs.")
    static final class ListVms implements java.util.concurrent.Callable<Integer> {
        @Spec
        CommandSpec spec;
        @picocli.CommandLine.Mixin
        SocketOption socket = new SocketOption();

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            try (DaemonAddress.Control control = socket.address().control()) {
                RemoteHypervisor hypervisor = control.hypervisor();
                out.printf("%-6s %-16s %-9s %-9s %s%n", "ID", "NAME", "ROLE", "STATE", "RAM");
                for (VmInfo vm : hypervisor.listVms()) {
                    out.printf("%-6d %-16s %-9s %-9s %s%n", vm.id().value(), vm.name(), vm.role().name().toLowerCase(java.util.Locale.ROOT),
                            vm.state().name().toLowerCase(java.util.Locale.ROOT), Sizes.format(vm.ramSizeBytes()));
                }
            }
            return 0;
        }
    }

    private VmCommand() {
    }
}
