package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.Interrupt;
import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmState;
import dev.airlock.memory.sys.Linux;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * A VM process for the tests: attaches with the credential it is given, then runs one command per
 * line from stdin and answers one line on stdout. Interrupts are recorded, never acted on, so the
 * test decides when to drain.
 */
public final class TestVmMain {
    private TestVmMain() {
    }

    /**
     * Runs the VM.
     *
     * @param args the daemon socket and the credential in hex
     * @throws Exception if stdin fails
     */
    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        RemoteVmContext vm;
        try {
            vm = RemoteVmContext.attach(Path.of(args[0]), Credential.fromHex(args[1]));
        } catch (HypervisorRefusedException e) {
            out.println("REFUSED " + e.reason() + " " + e.getMessage());
            System.exit(3);
            return;
        }
        LinkedBlockingQueue<Interrupt> interrupts = new LinkedBlockingQueue<>();
        vm.setInterruptHandler(interrupts::add);
        out.println("ATTACHED " + vm.id().value() + " " + Linux.getpid());
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] w = line.split(" ");
            try {
                out.println(run(vm, interrupts, w));
            } catch (HypervisorRefusedException e) {
                out.println("REFUSED " + e.reason());
            } catch (RuntimeException e) {
                out.println("ERROR " + e);
            }
            if (w[0].equals("exit")) {
                break;
            }
        }
        vm.close();
    }

    private static String run(RemoteVmContext vm, LinkedBlockingQueue<Interrupt> interrupts, String[] w) throws Exception {
        return switch (w[0]) {
            case "await" -> vm.awaitState(VmState.valueOf(w[1]), Duration.ofSeconds(10)) ? "ok" : "timeout " + vm.state();
            case "send" -> vm.sendMessage(peer(w[1]), w[2].getBytes(StandardCharsets.UTF_8)).name();
            case "sendbig" -> vm.sendMessage(peer(w[1]), new byte[Integer.parseInt(w[2])]).name();
            case "recv" -> {
                Optional<byte[]> message = vm.receiveMessage(peer(w[1]));
                yield message.map(m -> "MSG " + new String(m, StandardCharsets.UTF_8)).orElse("EMPTY");
            }
            case "ring" -> {
                vm.ringDoorbell(peer(w[1]), Long.parseLong(w[2]));
                yield "ok";
            }
            case "read" -> "FLAGS " + vm.readAndClearDoorbell(peer(w[1]));
            case "mask" -> {
                vm.maskDoorbell(peer(w[1]));
                yield "ok";
            }
            case "unmask" -> {
                vm.unmaskDoorbell(peer(w[1]));
                yield "ok";
            }
            case "irq" -> { // irq CAUSE PEER TIMEOUT_MS: wait for that interrupt, skipping others
                long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Long.parseLong(w[3]));
                while (true) {
                    Interrupt next = interrupts.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                    if (next == null) {
                        yield "timeout";
                    }
                    if (next.cause().name().equals(w[1]) && next.peer().value() == Integer.parseInt(w[2])) {
                        yield "ok";
                    }
                }
            }
            case "clear" -> {
                interrupts.clear();
                yield "ok";
            }
            case "regions" -> vm.sharedRegions().stream().map(TestVmMain::describe).sorted().collect(Collectors.joining(",", "REGIONS ", ""));
            case "peers" -> vm.peers().stream().map(p -> String.valueOf(p.value())).sorted().collect(Collectors.joining(",", "PEERS ", ""));
            case "write" -> { // write GPA TEXT
                byte[] bytes = w[2].getBytes(StandardCharsets.UTF_8);
                MemorySegment target = vm.addressSpace().translate(Long.decode(w[1]), bytes.length);
                MemorySegment.copy(bytes, 0, target, ValueLayout.JAVA_BYTE, 0, bytes.length);
                yield "ok";
            }
            case "peek" -> { // peek GPA LENGTH
                MemorySegment source = vm.addressSpace().translate(Long.decode(w[1]), Integer.parseInt(w[2]));
                yield "BYTES " + new String(source.toArray(ValueLayout.JAVA_BYTE), StandardCharsets.UTF_8);
            }
            case "panic" -> { // the next interrupt's handler throws: the VM dies
                vm.setInterruptHandler(interrupt -> {
                    throw new IllegalStateException("guest kernel panic (expected by the test)");
                });
                yield "ok";
            }
            case "threads" -> Thread.getAllStackTraces().keySet().stream().map(Thread::getName)
                    .filter(n -> n.startsWith("airlock")).sorted().collect(Collectors.joining(",", "THREADS ", ""));
            case "state" -> vm.state().name();
            case "exit" -> "bye";
            default -> "ERROR unknown command " + w[0];
        };
    }

    private static VmId peer(String value) {
        return new VmId(Integer.parseInt(value));
    }

    private static String describe(SharedRegionMapping m) {
        return m.name() + "@0x" + Long.toHexString(m.gpaBase());
    }
}
