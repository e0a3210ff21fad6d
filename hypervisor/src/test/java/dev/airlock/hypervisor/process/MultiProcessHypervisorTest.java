package dev.airlock.hypervisor.process;

import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.hypervisor.HypervisorRefusedException;
import dev.airlock.hypervisor.RefusalReason;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.VmState;
import dev.airlock.memory.sys.UnixSocket;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The multi-process runtime with real processes: the daemon runs in this JVM, every VM is a child
 * JVM running {@link TestVmMain}.
 */
@Timeout(60)
class MultiProcessHypervisorTest {
    private static final long RAM = 1 << 20;
    private static final long PAGE = 4096;

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

    private VmProcess vm(VmId id) {
        VmProcess process = VmProcess.start(daemon.socketPath(), hypervisor.credential(id), dir.resolve("vm.log"));
        processes.add(process);
        assertTrue(process.attached(), () -> "not attached: " + process.greeting);
        return process;
    }

    private static int openFds() {
        return VmProcess.fdTargets(Path.of("/proc/self/fd")).size();
    }

    private static void awaitTrue(BooleanSupplier condition, java.util.function.Supplier<String> message) {
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

    private static void running(VmProcess... vms) {
        for (VmProcess vm : vms) {
            assertEquals("ok", vm.command("await RUNNING"));
        }
    }

    @Test
    void shouldQueueMessagesWithFullEmptyAndNotify() {
        VmId p = hypervisor.createVm(VmSpec.primary("host", RAM));
        VmId s = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        hypervisor.connectMessageQueues(p, s, 2);
        VmProcess primary = vm(p);
        VmProcess secondary = vm(s);
        hypervisor.startVm(p);
        hypervisor.startVm(s);
        running(primary, secondary);

        assertEquals("EMPTY", primary.command("recv " + s.value()));
        assertEquals("OK", secondary.command("send " + p.value() + " one"));
        assertEquals("ok", primary.command("irq MESSAGE_AVAILABLE " + s.value() + " 5000"));
        assertEquals("OK", secondary.command("send " + p.value() + " two"));
        assertEquals("FULL", secondary.command("send " + p.value() + " three"));
        assertEquals("MSG one", primary.command("recv " + s.value()));
        assertEquals("ok", secondary.command("irq QUEUE_NOT_FULL " + p.value() + " 5000"));
        assertEquals("OK", secondary.command("send " + p.value() + " three"));
        assertEquals("MSG two", primary.command("recv " + s.value()));
        assertEquals("MSG three", primary.command("recv " + s.value()));
        assertEquals("EMPTY", primary.command("recv " + s.value()));
        assertEquals("REFUSED MESSAGE_TOO_LARGE", secondary.command("sendbig " + p.value() + " 241"));
        assertEquals("OK", secondary.command("sendbig " + p.value() + " 240"));
        // and the other direction
        assertEquals("OK", primary.command("send " + s.value() + " back"));
        assertEquals("ok", secondary.command("irq MESSAGE_AVAILABLE " + p.value() + " 5000"));
        assertEquals("MSG back", secondary.command("recv " + p.value()));
    }

    @Test
    void shouldAccumulateDoorbellFlagsAndHonourTheMask() {
        VmId p = hypervisor.createVm(VmSpec.primary("host", RAM));
        VmId s = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        VmProcess primary = vm(p);
        VmProcess secondary = vm(s);
        hypervisor.connectDoorbells(p, s); // after attach: handed over as an event
        hypervisor.startVm(p);
        hypervisor.startVm(s);
        running(primary, secondary);
        awaitTrue(() -> ("PEERS " + p.value()).equals(secondary.command("peers")), () -> "secondary not linked");

        assertEquals("ok", secondary.command("ring " + p.value() + " 1"));
        assertEquals("ok", primary.command("irq DOORBELL " + s.value() + " 5000"));
        assertEquals("ok", secondary.command("ring " + p.value() + " 4"));
        assertEquals("FLAGS 5", primary.command("read " + s.value()));
        assertEquals("FLAGS 0", primary.command("read " + s.value()));

        assertEquals("ok", primary.command("mask " + s.value()));
        assertEquals("ok", primary.command("clear"));
        assertEquals("ok", secondary.command("ring " + p.value() + " 2"));
        assertEquals("ok", secondary.command("ring " + p.value() + " 8"));
        assertEquals("timeout", primary.command("irq DOORBELL " + s.value() + " 300"));
        assertEquals("ok", primary.command("unmask " + s.value()));
        assertEquals("ok", primary.command("irq DOORBELL " + s.value() + " 5000"));
        assertEquals("FLAGS 10", primary.command("read " + s.value()));

        assertEquals("ok", primary.command("ring " + s.value() + " 16"));
        assertEquals("ok", secondary.command("irq DOORBELL " + p.value() + " 5000"));
        assertEquals("FLAGS 16", secondary.command("read " + p.value()));
    }

    @Test
    void rejectsWrongAndReusedCredentials() throws InterruptedException {
        VmId s = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        VmProcess wrong = VmProcess.start(daemon.socketPath(), Credential.random(), dir.resolve("vm.log"));
        processes.add(wrong);
        assertTrue(wrong.greeting.startsWith("REFUSED NOT_GRANTED"), wrong.greeting);
        assertTrue(wrong.waitForExit());

        VmProcess first = vm(s);
        VmProcess second = VmProcess.start(daemon.socketPath(), hypervisor.credential(s), dir.resolve("vm.log"));
        processes.add(second);
        assertTrue(second.greeting.startsWith("REFUSED NOT_GRANTED"), second.greeting); // bound to the first pid
        assertTrue(first.attached());

        HypervisorRefusedException control = assertThrows(HypervisorRefusedException.class,
                () -> RemoteHypervisor.connect(daemon.socketPath(), Credential.random()));
        assertEquals(RefusalReason.NOT_GRANTED, control.reason());
        assertEquals(1, hypervisor.listVms().size(), "the daemon keeps serving");
    }

    @Test
    void rejectsCallsWithoutAGrant() {
        VmId p = hypervisor.createVm(VmSpec.primary("host", RAM));
        VmId s1 = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        VmId s2 = hypervisor.createVm(VmSpec.secondary("guest2", RAM));
        hypervisor.connectMessageQueues(p, s1, 4);
        hypervisor.connectDoorbells(p, s1);
        VmProcess primary = vm(p);
        VmProcess guest1 = vm(s1);
        VmProcess guest2 = vm(s2);
        assertEquals("REFUSED NOT_RUNNING", guest1.command("send " + p.value() + " early"));
        hypervisor.startVm(p);
        hypervisor.startVm(s1);
        hypervisor.startVm(s2);
        running(primary, guest1, guest2);

        assertEquals("REFUSED WRONG_VM", guest1.command("send " + s2.value() + " x"));
        assertEquals("REFUSED WRONG_VM", guest2.command("ring " + s1.value() + " 1"));
        assertEquals("REFUSED WRONG_VM", guest1.command("send " + s1.value() + " self"));
        assertEquals("REFUSED NOT_GRANTED", guest2.command("send " + p.value() + " x"));
        assertEquals("REFUSED NOT_GRANTED", primary.command("recv " + s2.value()));
        assertEquals("REFUSED NOT_GRANTED", primary.command("ring " + s2.value() + " 1"));
        assertEquals("REFUSED NOT_GRANTED", guest2.command("read " + p.value()));
        assertEquals("REFUSED NO_SUCH_VM", guest1.command("send 99 x"));
        assertEquals("REFUSED NO_SUCH_VM", guest1.command("mask 99"));

        HypervisorRefusedException twoSecondaries = assertThrows(HypervisorRefusedException.class,
                () -> hypervisor.connectMessageQueues(s1, s2, 4));
        assertEquals(RefusalReason.WRONG_VM, twoSecondaries.reason());
        assertEquals(RefusalReason.CONFLICT, assertThrows(HypervisorRefusedException.class,
                () -> hypervisor.createVm(VmSpec.primary("host2", RAM))).reason());
        assertThrows(IllegalArgumentException.class, () -> hypervisor.connectMessageQueues(p, s2, 1));

        hypervisor.stopVm(s1);
        assertEquals("ok", guest1.command("await STOPPED"));
        assertEquals("REFUSED NOT_RUNNING", guest1.command("send " + p.value() + " x"));
        assertEquals("REFUSED NOT_RUNNING", guest1.command("ring " + p.value() + " 1"));
        assertEquals("OK", primary.command("send " + s1.value() + " held"));
        assertEquals("timeout", guest1.command("irq MESSAGE_AVAILABLE " + p.value() + " 300"));
        hypervisor.startVm(s1);
        assertEquals("ok", guest1.command("irq MESSAGE_AVAILABLE " + p.value() + " 5000")); // held, then delivered
        assertEquals("MSG held", guest1.command("recv " + p.value()));
    }

    @Test
    void shouldRevokeAndReleaseEverythingWhenAVmProcessIsKilled() {
        VmId p = hypervisor.createVm(VmSpec.primary("host", RAM));
        VmId s = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        hypervisor.createSharedRegion(p, s, "guest1.blk0", 4 * PAGE, 0x1000_0000L, 0x8000_0000L);
        hypervisor.connectMessageQueues(p, s, 4);
        hypervisor.connectDoorbells(p, s);
        VmProcess primary = vm(p);
        VmProcess secondary = vm(s);
        hypervisor.startVm(p);
        hypervisor.startVm(s);
        running(primary, secondary);
        assertEquals("OK", secondary.command("send " + p.value() + " hello"));
        assertTrue(primary.maps().stream().anyMatch(l -> l.contains("guest1.blk0")));
        int daemonFdsWithBoth = openFds();

        secondary.kill();

        assertEquals("ok", primary.command("irq PEER_GONE " + s.value() + " 10000"));
        awaitTrue(() -> hypervisor.listVms().size() == 1, () -> "vm not destroyed: " + hypervisor.listVms());
        assertTrue(hypervisor.listSharedRegions().isEmpty());
        assertEquals("REFUSED REVOKED", primary.command("send " + s.value() + " x"));
        assertEquals("REFUSED REVOKED", primary.command("recv " + s.value()));
        assertEquals("REFUSED REVOKED", primary.command("ring " + s.value() + " 1"));
        assertEquals("PEERS ", primary.command("peers"));
        assertEquals("REGIONS ", primary.command("regions"));
        // the primary unmaps its side after its PEER_GONE handler returned, and closes the doorbell fds
        awaitTrue(() -> primary.maps().stream().noneMatch(l -> l.contains("airlock-region") || l.contains("airlock-doorbell")),
                () -> "primary still maps " + primary.maps().stream().filter(l -> l.contains("airlock")).toList());
        awaitTrue(() -> primary.fdTargets().stream().noneMatch(t -> t.contains("memfd:airlock") || t.contains("eventfd")),
                () -> "primary still holds " + primary.fdTargets());
        assertEquals("THREADS airlock-vm-host-conn,airlock-vm-host-irq", primary.command("threads"), "the doorbell waiter ended");
        // the daemon released its memfd, eventfds and the dead connection: one socket and those five fds fewer
        awaitTrue(() -> openFds() <= daemonFdsWithBoth - 5, () -> "daemon fds " + openFds() + " vs " + daemonFdsWithBoth
                + ": " + VmProcess.fdTargets(Path.of("/proc/self/fd")));
        assertEquals(2, daemon.connectionCount(), "control client and primary");
    }

    @Test
    void shouldDestroyAnAttachedVmFromTheControlPlane() {
        VmId p = hypervisor.createVm(VmSpec.primary("host", RAM));
        VmId s = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        hypervisor.createSharedRegion(p, s, "guest1.blk0", PAGE, 0x1000_0000L, 0x8000_0000L);
        hypervisor.connectDoorbells(p, s);
        VmProcess primary = vm(p);
        VmProcess secondary = vm(s);
        hypervisor.startVm(p);
        hypervisor.startVm(s);
        running(primary, secondary);

        hypervisor.destroyVm(s);
        assertEquals("ok", primary.command("irq PEER_GONE " + s.value() + " 10000"));
        assertEquals("ok", secondary.command("await DESTROYED"));
        assertEquals("REFUSED NOT_RUNNING", secondary.command("send " + p.value() + " x"));
        awaitTrue(() -> secondary.maps().stream().noneMatch(l -> l.contains("airlock-")),
                () -> "destroyed vm still maps " + secondary.maps());
        awaitTrue(() -> daemon.connectionCount() == 2, () -> "connections: " + daemon.connectionCount());
    }

    @Test
    void shouldKillAVmWhoseHandlerThrowsAndTellItsPeer() {
        VmId p = hypervisor.createVm(VmSpec.primary("host", RAM));
        VmId s = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        hypervisor.connectDoorbells(p, s);
        VmProcess primary = vm(p);
        VmProcess secondary = vm(s);
        hypervisor.startVm(p);
        hypervisor.startVm(s);
        running(primary, secondary);
        awaitTrue(() -> ("PEERS " + p.value()).equals(secondary.command("peers")), () -> "secondary not linked");
        assertEquals("ok", secondary.command("panic"));
        assertEquals("ok", primary.command("ring " + s.value() + " 1"));
        assertEquals("ok", primary.command("irq PEER_GONE " + s.value() + " 10000"));
        assertEquals("DESTROYED", secondary.command("state"));
        assertEquals(List.of(p), hypervisor.listVms().stream().map(v -> v.id()).toList());
    }

    @Test
    void shouldDropAMalformedConnectionAndKeepServing() {
        try (UnixSocket raw = UnixSocket.connect(daemon.socketPath())) {
            raw.send(new byte[] {0, 0, 0, 4, 1, 2, 3, 4}); // length 4 < header
            assertTrue(dropped(raw), "the daemon drops the connection");
        }
        try (UnixSocket raw = UnixSocket.connect(daemon.socketPath())) {
            FrameChannel frames = new FrameChannel(raw);
            frames.send(WireLayout.CREATE_VM, 1, new FrameChannel.Writer().string("sneaky")); // not authenticated
            assertTrue(dropped(raw), "the daemon drops the connection");
        }
        VmId s = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        assertEquals(VmState.CREATED, hypervisor.vmInfo(s).state());
        awaitTrue(() -> daemon.connectionCount() == 1, () -> "connections: " + daemon.connectionCount());
    }

    @Test
    void shouldMapOnlyGrantedRegionsInEachProcess() {
        VmId p = hypervisor.createVm(VmSpec.primary("host", RAM));
        VmId s1 = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        VmId s2 = hypervisor.createVm(VmSpec.secondary("guest2", RAM));
        hypervisor.createSharedRegion(p, s1, "guest1.blk0", 4 * PAGE, 0x1000_0000L, 0x8000_0000L);
        hypervisor.createSharedRegion(p, s2, "guest2.blk0", 4 * PAGE, 0x2000_0000L, 0x8000_0000L);
        hypervisor.connectDoorbells(p, s1);
        hypervisor.connectDoorbells(p, s2);
        VmProcess primary = vm(p);
        VmProcess guest1 = vm(s1);
        VmProcess guest2 = vm(s2);
        hypervisor.startVm(p);
        hypervisor.startVm(s1);
        hypervisor.startVm(s2);
        running(primary, guest1, guest2);

        // the same bytes at each side's own base
        assertEquals("ok", guest1.command("write 0x80000010 from-guest1"));
        assertEquals("BYTES from-guest1", primary.command("peek 0x10000010 11"));
        assertEquals("ok", guest2.command("write 0x80000010 from-guest2"));
        assertEquals("BYTES from-guest2", primary.command("peek 0x20000010 11"));
        assertEquals("REGIONS guest1.blk0@0x80000000", guest1.command("regions"));
        assertEquals("REGIONS guest1.blk0@0x10000000,guest2.blk0@0x20000000", primary.command("regions"));

        String region1 = "airlock-region-1-guest1.blk0";
        String region2 = "airlock-region-2-guest2.blk0";
        String doorbell1 = "airlock-doorbell-" + p.value() + "-" + s1.value();
        String doorbell2 = "airlock-doorbell-" + p.value() + "-" + s2.value();
        checkHolds(primary, List.of(region1, region2, doorbell1, doorbell2), List.of());
        checkHolds(guest1, List.of(region1, doorbell1), List.of(region2, doorbell2));
        checkHolds(guest2, List.of(region2, doorbell2), List.of(region1, doorbell1));
        // private RAM is anonymous memory of each VM process: no memfd but the granted ones exists in any of them
        for (VmProcess vm : List.of(primary, guest1, guest2)) {
            for (String line : vm.maps()) {
                if (line.contains("memfd:")) {
                    assertTrue(line.contains("memfd:airlock-region-") || line.contains("memfd:airlock-doorbell-")
                            || !line.contains("airlock"), line);
                }
            }
        }
        // and the daemon, which creates the memfds, maps none of them
        assertTrue(daemonMaps().stream().noneMatch(l -> l.contains("memfd:airlock")), "the daemon maps no region");

        // destroying a region takes it out of both processes at once
        hypervisor.destroySharedRegion(hypervisor.listSharedRegions().get(0).id());
        awaitTrue(() -> guest1.maps().stream().noneMatch(l -> l.contains(region1)), () -> "guest1 still maps " + region1);
        awaitTrue(() -> primary.maps().stream().noneMatch(l -> l.contains(region1)), () -> "primary still maps " + region1);
        assertEquals("REGIONS guest2.blk0@0x20000000", primary.command("regions"));
        assertEquals("REGIONS ", guest1.command("regions"));
        assertEquals(RefusalReason.NOT_GRANTED, assertThrows(HypervisorRefusedException.class,
                () -> hypervisor.destroySharedRegion(new dev.airlock.hypervisor.SharedRegionId(1))).reason());
        assertEquals(RefusalReason.CONFLICT, assertThrows(HypervisorRefusedException.class,
                () -> hypervisor.createSharedRegion(p, s2, "guest2.blk1", PAGE, 0x2000_0000L, 0x9000_0000L)).reason(),
                "overlaps guest2.blk0 in the primary");
    }

    @Test
    void shouldServeAPairFromABackendProcessAndKeepThePairWhenTheBackendDies() throws InterruptedException {
        VmId p = hypervisor.createVm(VmSpec.primary("host", RAM));
        VmId s1 = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
        VmId s2 = hypervisor.createVm(VmSpec.secondary("guest2", RAM));
        Credential backendCredential = hypervisor.assignBackend(p, s1);
        assertEquals(RefusalReason.CONFLICT, assertThrows(HypervisorRefusedException.class,
                () -> hypervisor.assignBackend(p, s1)).reason());
        hypervisor.createSharedRegion(p, s1, "guest1.blk0", 4 * PAGE, 0x1000_0000L, 0x8000_0000L);
        hypervisor.createSharedRegion(p, s2, "guest2.blk0", 4 * PAGE, 0x2000_0000L, 0x8000_0000L);
        hypervisor.connectMessageQueues(p, s1, 4);
        hypervisor.connectMessageQueues(p, s2, 4);
        hypervisor.connectDoorbells(p, s1);
        assertEquals(RefusalReason.CONFLICT, assertThrows(HypervisorRefusedException.class,
                () -> hypervisor.assignBackend(p, s2)).reason(), "a backend comes before the grants");
        VmProcess primary = vm(p);
        VmProcess backend = VmProcess.start(daemon.socketPath(), backendCredential, dir.resolve("vm.log"));
        processes.add(backend);
        assertTrue(backend.attached(), backend.greeting);
        VmProcess impostor = VmProcess.start(daemon.socketPath(), backendCredential, dir.resolve("vm.log"));
        processes.add(impostor);
        assertTrue(impostor.greeting.startsWith("REFUSED NOT_GRANTED"), impostor.greeting);
        VmProcess guest1 = vm(s1);
        VmProcess guest2 = vm(s2);
        hypervisor.startVm(p);
        hypervisor.startVm(s1);
        hypervisor.startVm(s2);
        running(primary, backend, guest1, guest2);

        // the backend holds the pair's grants, the primary's own process does not
        checkHolds(backend, List.of("airlock-region-1-guest1.blk0", "airlock-doorbell-" + p.value() + "-" + s1.value()),
                List.of("airlock-region-2-guest2.blk0"));
        checkHolds(primary, List.of("airlock-region-2-guest2.blk0"),
                List.of("airlock-region-1-guest1.blk0", "airlock-doorbell-" + p.value() + "-" + s1.value()));
        assertEquals("ok", guest1.command("write 0x80000000 via-backend"));
        assertEquals("BYTES via-backend", backend.command("peek 0x10000000 11"));
        assertEquals("OK", guest1.command("send " + p.value() + " request"));
        assertEquals("ok", backend.command("irq MESSAGE_AVAILABLE " + s1.value() + " 5000"));
        assertEquals("MSG request", backend.command("recv " + s1.value()));
        assertEquals("ok", guest1.command("ring " + p.value() + " 1"));
        assertEquals("ok", backend.command("irq DOORBELL " + s1.value() + " 5000"));
        assertEquals("REFUSED NOT_GRANTED", backend.command("send " + s2.value() + " x"));
        assertEquals("REFUSED NOT_GRANTED", primary.command("send " + s1.value() + " x"));
        assertEquals("OK", primary.command("send " + s2.value() + " x"));

        backend.kill();
        assertEquals("ok", guest1.command("irq BACKEND_DETACHED " + p.value() + " 10000"));
        assertEquals("OK", guest1.command("send " + p.value() + " x"), "the pair is kept (BackendRestartTest restarts it)");
        assertEquals("ok", guest1.command("ring " + p.value() + " 1"));
        assertTrue(guest1.maps().stream().anyMatch(l -> l.contains("airlock-region-1-guest1.blk0")), "guest1 still maps the region");
        assertEquals(List.of("guest1.blk0", "guest2.blk0"), hypervisor.listSharedRegions().stream().map(r -> r.name()).toList());
        assertEquals(3, hypervisor.listVms().size(), "the primary lives on");
        assertEquals("OK", primary.command("send " + s2.value() + " y"));
        assertEquals("REFUSED NOT_GRANTED", primary.command("send " + s1.value() + " x"), "the primary's own process still may not");
    }

    /** End of stream, or a reset when the daemon closed with our bytes unread. */
    private static boolean dropped(UnixSocket raw) {
        java.lang.foreign.MemorySegment buffer = java.lang.foreign.Arena.ofAuto().allocate(16);
        try {
            return raw.receive(buffer).endOfStream();
        } catch (dev.airlock.memory.sys.NativeCallException e) {
            return e.errno() == dev.airlock.memory.sys.Errno.ECONNRESET;
        }
    }

    private static List<String> daemonMaps() {
        try {
            return java.nio.file.Files.readAllLines(Path.of("/proc/self/maps"));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static void checkHolds(VmProcess vm, List<String> granted, List<String> notGranted) {
        List<String> maps = vm.maps();
        List<String> fds = vm.fdTargets();
        for (String name : granted) {
            if (name.startsWith("airlock-region")) {
                assertTrue(maps.stream().anyMatch(l -> l.contains("/memfd:" + name + " ")), vm.pid() + " maps " + name);
            } else {
                assertTrue(maps.stream().anyMatch(l -> l.contains("/memfd:" + name + " ")), vm.pid() + " maps " + name);
            }
        }
        for (String name : notGranted) {
            assertFalse(maps.stream().anyMatch(l -> l.contains(name)), vm.pid() + " must not map " + name);
            assertFalse(fds.stream().anyMatch(t -> t.contains(name)), vm.pid() + " must not hold " + name);
        }
    }
}
