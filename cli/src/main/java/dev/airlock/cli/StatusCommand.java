package dev.airlock.cli;

import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmInfo;
import dev.airlock.hypervisor.process.RemoteHypervisor;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code airlock status}: the VMs and shared regions the daemon holds, then what each backend (its
 * devices and queues) and each VM process (its drivers and bounce pools) last reported in the
 * daemon's state folder. The hypervisor itself cannot see inside a region, and must not: devices,
 * queues and pools are reported by the processes that own them.
 */
@Command(name = "status", mixinStandardHelpOptions = true, description = {
    "Shows the VMs, shared regions, devices, queues and bounce-pool usage of a running hypervisor.",
    "",
    "VMs and regions come from the daemon; devices and queues from each backend's status file and",
    "pool usage from each VM process's status file (refreshed every second; older ones are marked stale)."})
final class StatusCommand implements Callable<Integer> {
    /** A status file older than this is marked stale (its process is gone or stuck). */
    static final Duration STALE_AFTER = Duration.ofSeconds(5);

    @Spec
    CommandSpec spec;
    @Mixin
    VmCommand.SocketOption socket = new VmCommand.SocketOption();

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        DaemonAddress address = socket.address();
        List<VmInfo> vms;
        List<SharedRegionInfo> regions;
        try (DaemonAddress.Control control = address.control()) {
            RemoteHypervisor hypervisor = control.hypervisor();
            vms = hypervisor.listVms();
            regions = hypervisor.listSharedRegions();
        }
        out.printf("hypervisor %s: %d VMs, %d shared regions%n", address.socket(), vms.size(), regions.size());
        out.println();
        out.printf("%-6s %-16s %-9s %-9s %s%n", "ID", "NAME", "ROLE", "STATE", "RAM");
        for (VmInfo vm : vms) {
            out.printf("%-6d %-16s %-9s %-9s %s%n", vm.id().value(), vm.name(), lower(vm.role()), lower(vm.state()),
                    Sizes.format(vm.ramSizeBytes()));
        }
        if (!regions.isEmpty()) {
            out.println();
            out.printf("%-6s %-32s %-9s %-14s %s%n", "REGION", "NAME", "SIZE", "PRIMARY GPA", "SECONDARY GPA");
            for (SharedRegionInfo r : regions) {
                out.printf("%-6d %-32s %-9s 0x%-12x 0x%x%n", r.id().value(), r.name(), Sizes.format(r.sizeBytes()),
                        r.primaryGpaBase(), r.secondaryGpaBase());
            }
        }
        for (VmInfo vm : vms) {
            printStatus(out, address.statusFile(vm.name(), "backend"), "backend serving " + vm.name());
            printStatus(out, address.statusFile(vm.name(), "vm"), "VM process of " + vm.name());
        }
        return 0;
    }

    private static void printStatus(PrintWriter out, Path file, String title) throws IOException {
        if (!Files.exists(file)) {
            return;
        }
        Instant modified = Files.getLastModifiedTime(file).toInstant();
        Duration age = Duration.between(modified, Instant.now());
        out.println();
        out.printf("%s (%s)%s%n", title, file.getFileName(),
                age.compareTo(STALE_AFTER) > 0 ? ", STALE: last written " + age.toSeconds() + " s ago" : "");
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            out.println("  " + line);
        }
    }

    private static String lower(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT);
    }
}
