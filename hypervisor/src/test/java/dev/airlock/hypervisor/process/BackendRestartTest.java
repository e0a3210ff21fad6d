package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.RefusalReason;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A pair's backend process restarted, on the multi-process runtime with real processes: the daemon
 * here, the primary, the secondary and each backend a child JVM running {@link TestVmMain}.
 */
@Timeout(60)
class BackendRestartTest {
    private static final long RAM = 1 << 20;
    private static final long PAGE = 4096;
    private static final String REGION = "airlock-region-1-guest1.blk0";

    @TempDir
    Path dir;
    private HypervisorDaemon daemon;
    private RemoteHypervisor hypervisor;
    private final List<VmProcess> processes = new ArrayList<>();
    private int baselineFds;

    @BeforeEach
    void startDaemon() {
        baselineFds = openFds();
        daemon = HypervisorDaemon.start(dir.resolve("d.sock"), HypervisorConfig.DEFAULT);
        hypervisor = RemoteHypervisor.connect(daemon.socketPath(), daemon.controlCredential());
    }

    @AfterEach
    void stopDaemon() {
        processes.forEach(VmProcess::close);
        hypervisor.close();
        daemon.close();
        awaitTrue(() -> openFds() <= baselineFds, () -> "fds leaked: " + openFds() + " > " + baselineFds
                + " " + VmProcess.fdTargets(Path.of("/proc/self/fd")));
        awaitTrue(() -> Thread.getAllStackTraces().keySet().stream()
                        .noneMatch(t -> t.getName().startsWith("airlock-daemon") || t.getName().startsWith("airlock-control")),
                () -> "threads leaked: " + Thread.getAllStackTraces().keySet().stream().map(Thread::getName)
                        .filter(n -> n.startsWith("airlock")).toList());
    }

    private VmProcess process(Credential credential) {
        VmProcess process = VmProcess.start(daemon.socketPath(), credential, dir.resolve("vm.log"));
        processes.add(process);
        return process;
    }

    private VmProcess attached(Credential credential) {
        VmProcess process = process(credential);
        assertTrue(process.attached(), () -> "not attached: " + process.greeting);
        assertEquals("ok", process.command("await RUNNING"));
        return process;
    }

    @Test
    void shouldKeepThePairAndHandItToAReplacementBackend() throws InterruptedException {
        VmId p = hypervisor.createVm(VmSpec.primary("host", RAM));
        VmId s1 = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        VmId s2 = hypervisor.createVm(VmSpec.secondary("guest2", RAM));
        Credential first = hypervisor.assignBackend(p, s1);
        hypervisor.createSharedRegion(p, s1, "guest1.blk0", 4 * PAGE, 0x1000_0000L, 0x8000_0000L);
        hypervisor.createSharedRegion(p, s2, "guest2.blk0", 4 * PAGE, 0x2000_0000L, 0x8000_0000L);
        hypervisor.connectMessageQueues(p, s1, 4);
        hypervisor.connectDoorbells(p, s1);
        hypervisor.startVm(p);
        hypervisor.startVm(s1);
        hypervisor.startVm(s2);
        VmProcess primary = attached(hypervisor.credential(p));
        VmProcess guest1 = attached(hypervisor.credential(s1));
        VmProcess backend = attached(first);
        assertEquals("ok", guest1.command("irq BACKEND_ATTACHED " + p.value() + " 10000"), "the first attach is announced too");
        assertEquals(RefusalReason.CONFLICT, assertThrows(HypervisorRefusedException.class,
                () -> hypervisor.assignBackend(p, s1)).reason(), "refused while the backend is alive");
        assertEquals(RefusalReason.CONFLICT, assertThrows(HypervisorRefusedException.class,
                () -> hypervisor.assignBackend(p, s2)).reason(), "refused for a pair with grants that never had a backend");
        exchange(guest1, backend, p, s1, "one");
        assertEquals("ok", guest1.command("write 0x80000000 kept-across-restarts"));
        List<String> guestThreads = List.of(guest1.command("threads"));
        int daemonFds = openFds();

        // kill -9 with two requests queued toward the backend: they belonged to its session
        assertEquals("OK", guest1.command("send " + p.value() + " stale1"));
        assertEquals("OK", guest1.command("send " + p.value() + " stale2"));
        assertEquals("OK", backend.command("send " + s1.value() + " late-answer"));
        backend.kill();
        assertEquals("ok", guest1.command("irq BACKEND_DETACHED " + p.value() + " 10000"));
        assertEquals("REGIONS guest1.blk0@0x80000000", guest1.command("regions"), "the secondary keeps its region");
        assertEquals("PEERS " + p.value(), guest1.command("peers"));
        assertEquals(List.of("guest1.blk0", "guest2.blk0"), hypervisor.listSharedRegions().stream().map(r -> r.name()).toList());
        assertEquals("MSG late-answer", guest1.command("recv " + p.value()), "messages toward the secondary stay");
        assertEquals("OK", guest1.command("send " + p.value() + " while-detached"));
        assertEquals("ok", guest1.command("ring " + p.value() + " 1"), "flags rung while detached wait for the replacement");
        VmProcess oldCredential = process(first);
        assertTrue(oldCredential.greeting.startsWith("REFUSED NOT_GRANTED"), oldCredential.greeting);

        Credential second = hypervisor.assignBackend(p, s1);
        assertNotEquals(first, second, "a fresh credential");
        assertEquals(RefusalReason.CONFLICT, assertThrows(HypervisorRefusedException.class,
                () -> hypervisor.assignBackend(p, s1)).reason(), "refused while the replacement is assigned");
        assertTrue(process(first).greeting.startsWith("REFUSED NOT_GRANTED"), "the dead backend's credential is gone");
        VmProcess replacement = attached(second);
        assertEquals("ok", guest1.command("irq BACKEND_ATTACHED " + p.value() + " 10000"));
        awaitTrue(() -> holds(replacement, REGION) && holds(replacement, "airlock-doorbell-" + p.value() + "-" + s1.value()),
                () -> "the replacement was not handed the region and the doorbell: " + replacement.maps());
        assertFalse(replacement.maps().stream().anyMatch(l -> l.contains("guest2.blk0")), "nor anything of another pair");
        assertEquals("BYTES kept-across-restarts", replacement.command("peek 0x10000000 20"), "the region's contents stayed");
        assertEquals("EMPTY", replacement.command("recv " + s1.value()), "stale requests were dropped");
        assertEquals("ok", replacement.command("irq DOORBELL " + s1.value() + " 5000"), "pending flags raise DOORBELL");
        assertEquals("ok", guest1.command("ring " + p.value() + " 2"));
        assertEquals("FLAGS 3", replacement.command("read " + s1.value()));
        exchange(guest1, replacement, p, s1, "two");
        assertEquals("REFUSED NOT_GRANTED", primary.command("send " + s1.value() + " x"), "the primary's own process still may not");

        // the replacement closes its connection (exit): detached again, and a third backend takes over
        assertEquals("bye", replacement.command("exit"));
        assertTrue(replacement.waitForExit());
        assertEquals("ok", guest1.command("irq BACKEND_DETACHED " + p.value() + " 10000"));
        VmProcess third = attached(hypervisor.assignBackend(p, s1));
        assertEquals("ok", guest1.command("irq BACKEND_ATTACHED " + p.value() + " 10000"));
        awaitTrue(() -> holds(third, REGION), () -> "the third backend was not handed the region");
        exchange(guest1, third, p, s1, "three");
        assertEquals("BYTES kept-across-restarts", third.command("peek 0x10000000 20"));
        awaitTrue(() -> openFds() == daemonFds, () -> "the daemon holds " + openFds() + " fds, " + daemonFds + " before the restarts");
        assertEquals(guestThreads, List.of(guest1.command("threads")), "the secondary's threads are unchanged");
        assertEquals(1, guest1.fdTargets().stream().filter(t -> t.contains(REGION)).count(), "one memfd of the region in the secondary");

        // destroying the primary still revokes everything
        hypervisor.destroyVm(p);
        assertEquals("ok", guest1.command("irq PEER_GONE " + p.value() + " 10000"));
        assertEquals("REFUSED REVOKED", guest1.command("send " + p.value() + " x"));
        awaitTrue(() -> guest1.maps().stream().noneMatch(l -> l.contains("airlock-")), () -> "guest1 still maps the region");
        awaitTrue(() -> "DESTROYED".equals(third.command("state")), () -> "the backend is told its vm was destroyed");
        assertTrue(hypervisor.listSharedRegions().stream().noneMatch(r -> r.name().startsWith("guest1")));
        assertEquals(RefusalReason.NO_SUCH_VM, assertThrows(HypervisorRefusedException.class,
                () -> hypervisor.assignBackend(p, s1)).reason());
    }

    @Test
    void shouldTellASecondaryThatAttachesLateThatTheBackendIsDetached() {
        VmId p = hypervisor.createVm(VmSpec.primary("host", RAM));
        VmId s1 = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        Credential first = hypervisor.assignBackend(p, s1);
        hypervisor.connectMessageQueues(p, s1, 2);
        hypervisor.connectDoorbells(p, s1);
        hypervisor.startVm(p);
        hypervisor.startVm(s1);
        VmProcess backend = attached(first);
        backend.kill();
        VmProcess guest1 = attached(hypervisor.credential(s1));
        assertEquals("ok", guest1.command("irq BACKEND_DETACHED " + p.value() + " 10000"));
        assertEquals("OK", guest1.command("send " + p.value() + " a"));
        assertEquals("OK", guest1.command("send " + p.value() + " b"));
        assertEquals("FULL", guest1.command("send " + p.value() + " c"));
        VmProcess replacement = attached(hypervisor.assignBackend(p, s1));
        assertEquals("ok", guest1.command("irq QUEUE_NOT_FULL " + p.value() + " 10000"), "the dropped queue is not full any more");
        assertEquals("ok", guest1.command("irq BACKEND_ATTACHED " + p.value() + " 10000"));
        assertEquals("EMPTY", replacement.command("recv " + s1.value()));
        exchange(guest1, replacement, p, s1, "fresh");
    }

    @Test
    void shouldDeliverTheLatestBackendStateWhenDetachAndAttachCoalesce() {
        VmId p = hypervisor.createVm(VmSpec.primary("host", RAM));
        VmId s1 = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        Credential first = hypervisor.assignBackend(p, s1);
        hypervisor.connectMessageQueues(p, s1, 2);
        hypervisor.startVm(p);
        hypervisor.startVm(s1);
        VmProcess guest1 = attached(hypervisor.credential(s1));
        VmProcess backend = attached(first);
        assertEquals("ok", guest1.command("irq BACKEND_ATTACHED " + p.value() + " 10000"));

        // held while stopped: detached, then attached; both are delivered, in that order
        stopped(guest1, s1);
        backend.kill();
        VmProcess second = attached(reassignOnceDead(p, s1));
        hypervisor.startVm(s1);
        assertEquals("ok", guest1.command("irq BACKEND_DETACHED " + p.value() + " 10000"));
        assertEquals("ok", guest1.command("irq BACKEND_ATTACHED " + p.value() + " 10000"));

        // held while stopped: detached, attached, detached again; the attach is stale and dropped
        stopped(guest1, s1);
        second.kill();
        VmProcess third = attached(reassignOnceDead(p, s1));
        third.kill();
        Credential fourth = reassignOnceDead(p, s1);
        hypervisor.startVm(s1);
        assertEquals("ok", guest1.command("irq BACKEND_DETACHED " + p.value() + " 10000"));
        assertEquals("timeout", guest1.command("irq BACKEND_ATTACHED " + p.value() + " 1000"), "no attach after the last detach");
        attached(fourth);
        assertEquals("ok", guest1.command("irq BACKEND_ATTACHED " + p.value() + " 10000"));
    }

    private void stopped(VmProcess vm, VmId id) {
        hypervisor.stopVm(id);
        assertEquals("ok", vm.command("await STOPPED"));
        assertEquals("ok", vm.command("clear"));
    }

    /** Assigns a new backend as soon as the daemon has seen the old one die. */
    private Credential reassignOnceDead(VmId p, VmId s) {
        Credential[] issued = new Credential[1];
        awaitTrue(() -> {
            try {
                issued[0] = hypervisor.assignBackend(p, s);
                return true;
            } catch (HypervisorRefusedException e) {
                assertEquals(RefusalReason.CONFLICT, e.reason());
                return false;
            }
        }, () -> "the backend's death was not noticed");
        return issued[0];
    }

    /** A message each way and a doorbell each way between the secondary and the backend. */
    private static void exchange(VmProcess guest, VmProcess backend, VmId p, VmId s, String text) {
        assertEquals("ok", guest.command("clear"));
        assertEquals("ok", backend.command("clear"));
        assertEquals("OK", guest.command("send " + p.value() + " " + text));
        assertEquals("ok", backend.command("irq MESSAGE_AVAILABLE " + s.value() + " 5000"));
        assertEquals("MSG " + text, backend.command("recv " + s.value()));
        assertEquals("OK", backend.command("send " + s.value() + " re-" + text));
        assertEquals("ok", guest.command("irq MESSAGE_AVAILABLE " + p.value() + " 5000"));
        assertEquals("MSG re-" + text, guest.command("recv " + p.value()));
        assertEquals("ok", guest.command("ring " + p.value() + " 4"));
        awaitFlags(backend, s, 4);
        assertEquals("ok", backend.command("ring " + s.value() + " 8"));
        awaitFlags(guest, p, 8);
    }

    /** Waits for DOORBELL interrupts from {@code peer} until the flags read add up to {@code expected}. */
    private static void awaitFlags(VmProcess vm, VmId peer, long expected) {
        long flags = 0;
        for (int attempt = 0; attempt < 3 && flags != expected; attempt++) { // a spurious wake-up reads 0
            assertEquals("ok", vm.command("irq DOORBELL " + peer.value() + " 5000"));
            flags |= Long.parseLong(vm.command("read " + peer.value()).substring("FLAGS ".length()));
        }
        assertEquals(expected, flags);
    }

    private static boolean holds(VmProcess vm, String memfd) {
        return vm.maps().stream().anyMatch(l -> l.contains("/memfd:" + memfd + " "));
    }

    private static int openFds() {
        return VmProcess.fdTargets(Path.of("/proc/self/fd")).size();
    }

    private static void awaitTrue(BooleanSupplier condition, Supplier<String> message) {
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                fail(message.get());
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }
}
