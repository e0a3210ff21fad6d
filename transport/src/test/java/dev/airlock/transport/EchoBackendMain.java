package dev.airlock.transport;

import dev.airlock.hypervisor.SharedRegionId;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmState;
import dev.airlock.hypervisor.process.Credential;
import dev.airlock.hypervisor.process.RemoteVmContext;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The device side of {@link MultiProcessTransportTest}, in its own JVM: attaches as the backend of
 * a primary for one secondary, serves an {@link EchoDevice} in slot 0 of the region it is told, then
 * answers one line on stdout per command line on stdin.
 *
 * <p>Arguments: socket, credential (hex), transport kind, then the region: id, name, size, primary,
 * secondary, primary GPA, secondary GPA.
 */
public final class EchoBackendMain {
    private EchoBackendMain() {
    }

    /**
     * Runs the backend.
     *
     * @param args see the class comment
     * @throws Exception if anything fails (the test sees the process end)
     */
    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        RemoteVmContext vm = RemoteVmContext.attach(Path.of(args[0]), Credential.fromHex(args[1]));
        TransportKind kind = TransportKind.valueOf(args[2]);
        SharedRegionInfo region = new SharedRegionInfo(new SharedRegionId(Long.parseLong(args[3])), args[4], Long.parseLong(args[5]),
                new VmId(Integer.parseInt(args[6])), new VmId(Integer.parseInt(args[7])), Long.decode(args[8]), Long.decode(args[9]));
        if (!vm.awaitState(VmState.RUNNING, Duration.ofSeconds(20))) {
            out.println("ERROR not running: " + vm.state());
            System.exit(3);
        }
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (vm.sharedRegions().stream().noneMatch(m -> m.id().equals(region.id())) && System.nanoTime() < deadline) {
            Thread.sleep(1);
        }
        EchoDevice device = new EchoDevice();
        DeviceHost host = new DeviceHost(vm);
        host.addDevice(kind, region, 0, device);
        out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] w = line.split(" ");
            String answer = switch (w[0]) {
                case "label" -> {
                    device.setLabel(Long.decode(w[1]));
                    yield "ok";
                }
                // status, resets, activations, faults, protocol errors, internal errors
                case "stats" -> host.deviceStatus(region.secondary(), 0) + " " + device.resets.get() + " " + device.activations.get()
                        + " " + host.faultCount(region.secondary(), 0) + " " + host.protocolErrors() + " " + host.internalErrors();
                case "fault" -> String.valueOf(host.lastFault(region.secondary(), 0));
                case "exit" -> "bye";
                default -> "ERROR unknown command " + w[0];
            };
            out.println(answer);
            if (w[0].equals("exit")) {
                break;
            }
        }
        host.close();
        vm.close();
    }
}
