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
import java.util.ArrayList;
import java.util.List;

/**
 * The device side of the multi-process tests, in its own JVM: attaches with the credential it is
 * given (a backend's, or the primary's own to serve several secondaries), serves an
 * {@link EchoDevice} per device argument group, then answers one line on stdout per command line
 * on stdin. In {@code silent} mode it attaches but serves nothing: no device host, nobody answers.
 * In {@code serve-late} mode it prints {@code HOST} once its device host runs, and adds the devices
 * 300 ms later.
 *
 * <p>Arguments: socket, credential (hex), {@code serve} or {@code silent}, then per device ten
 * words: transport kind, notification mode, slot, and the region: id, name, size, primary,
 * secondary, primary GPA, secondary GPA.
 *
 * <p>Commands (device index {@code i} in argument order, 0 if left out): {@code label V [i]},
 * {@code stats [i]} (status, resets, activations, faults, protocol errors, internal errors,
 * overlapping model calls), {@code fault [i]}, {@code pollers} (live poller threads), {@code exit}.
 */
public final class EchoBackendMain {
    private static final int WORDS_PER_DEVICE = 10;

    private EchoBackendMain() {
    }

    private record Served(TransportKind kind, NotificationMode mode, int slot, SharedRegionInfo region, EchoDevice device) {
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
        boolean silent = args[2].equals("silent");
        List<Served> served = new ArrayList<>();
        for (int at = 3; at + WORDS_PER_DEVICE <= args.length; at += WORDS_PER_DEVICE) {
            SharedRegionInfo region = new SharedRegionInfo(new SharedRegionId(Long.parseLong(args[at + 3])), args[at + 4],
                    Long.parseLong(args[at + 5]), new VmId(Integer.parseInt(args[at + 6])), new VmId(Integer.parseInt(args[at + 7])),
                    Long.decode(args[at + 8]), Long.decode(args[at + 9]));
            served.add(new Served(TransportKind.valueOf(args[at]), NotificationMode.valueOf(args[at + 1]),
                    Integer.parseInt(args[at + 2]), region, new EchoDevice()));
        }
        if (!vm.awaitState(VmState.RUNNING, Duration.ofSeconds(20))) {
            out.println("ERROR not running: " + vm.state());
            System.exit(3);
        }
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        for (Served s : served) {
            while (vm.sharedRegions().stream().noneMatch(m -> m.id().equals(s.region().id())) && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
        }
        DeviceHost host = silent ? null : new DeviceHost(vm);
        if (args[2].equals("serve-late")) {
            out.println("HOST");
            Thread.sleep(300); // the host answers for empty slots meanwhile, as a backend that is still starting does
        }
        if (host != null) {
            for (Served s : served) {
                host.addDevice(s.kind(), s.region(), s.slot(), s.device(), s.mode());
            }
        }
        out.println("READY " + ProcessHandle.current().pid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] w = line.split(" ");
            String answer;
            try {
                answer = answer(w, host, served);
            } catch (RuntimeException e) {
                answer = "ERROR " + e;
            }
            out.println(answer);
            if (w[0].equals("exit")) {
                break;
            }
        }
        if (host != null) {
            host.close();
        }
        vm.close();
    }

    private static String answer(String[] w, DeviceHost host, List<Served> served) {
        int index = w.length > 1 && !w[0].equals("label") ? Integer.parseInt(w[1]) : w.length > 2 ? Integer.parseInt(w[2]) : 0;
        Served s = served.isEmpty() ? null : served.get(index);
        return switch (w[0]) {
            case "label" -> {
                s.device().setLabel(Long.decode(w[1]));
                yield "ok";
            }
            case "stats" -> {
                VmId peer = s.region().secondary();
                yield host.deviceStatus(peer, s.slot()) + " " + s.device().resets.get() + " " + s.device().activations.get()
                        + " " + host.faultCount(peer, s.slot()) + " " + host.protocolErrors() + " " + host.internalErrors()
                        + " " + s.device().overlaps.get();
            }
            case "fault" -> String.valueOf(host.lastFault(s.region().secondary(), s.slot()));
            case "pollers" -> String.valueOf(Thread.getAllStackTraces().keySet().stream()
                    .filter(t -> t.isAlive() && t.getName().startsWith(QueuePoller.THREAD_NAME_PREFIX)).count());
            case "exit" -> "bye";
            default -> "ERROR unknown command " + w[0];
        };
    }
}
