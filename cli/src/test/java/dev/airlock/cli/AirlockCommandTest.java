package dev.airlock.cli;

import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.hypervisor.process.HypervisorDaemon;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class AirlockCommandTest {
    record Run(int exitCode, String out, String err) {
    }

    static Run run(String... args) {
        CommandLine cli = Airlock.commandLine();
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cli.setOut(new PrintWriter(out, true));
        cli.setErr(new PrintWriter(err, true));
        int code = cli.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    @ParameterizedTest
    @ValueSource(strings = {"msgq-mmio", "shmem-doorbell"})
    @Timeout(120)
    void shouldRunTheInProcessDemoOnEachTransport(String transport) {
        Run r = run("demo", "--data", "16M", "--transport", transport);
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("in-process runtime, " + transport), r.out());
        assertTrue(r.out().contains("blk CRC32C"), r.out());
        assertTrue(r.out().contains("console backend   received \"hello from guest1"), r.out());
        assertTrue(r.out().contains("rng               4096 bytes"), r.out());
        assertTrue(r.out().contains("result            PASS"), r.out());
        assertFalse(r.out().contains("MISMATCH"), r.out());
    }

    @ParameterizedTest
    @ValueSource(strings = {"msgq-mmio", "shmem-doorbell"})
    @Timeout(180)
    void shouldRunTheMultiProcessDemoOnEachTransport(String transport) {
        Run r = run("demo", "--processes", "--data", "16M", "--transport", transport);
        assertEquals(0, r.exitCode(), r.out() + r.err());
        assertTrue(r.out().contains("multi-process runtime, " + transport), r.out());
        assertTrue(r.out().contains("|   blk CRC32C"), "the report comes from the VM process: " + r.out());
        assertTrue(r.out().contains("console backend   stdout: \"hello from guest1"), r.out());
        assertTrue(r.out().contains("result            PASS"), r.out());
    }

    @Test
    void shouldStillRunTheLoopback() {
        Run r = run("demo", "--loopback", "--data", "8M");
        assertEquals(0, r.exitCode(), r.err());
        assertTrue(r.out().contains("PASS: both directions intact"), r.out());
    }

    @Test
    void shouldExplainEachCommandInHelp() {
        Run r = run("--help");
        assertEquals(0, r.exitCode());
        for (String command : new String[] {"demo", "hypervisor", "vm", "backend", "status", "bench"}) {
            assertTrue(r.out().contains(command), command + " in " + r.out());
        }
        Run vm = run("vm", "--help");
        assertTrue(vm.out().contains("create") && vm.out().contains("run"), vm.out());
    }

    @Test
    void rejectsBadOptionsWithOneLineAndNoStackTrace() {
        Run r = run("demo", "--transport", "carrier-pigeon");
        assertEquals(Airlock.EXIT_ERROR, r.exitCode());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().startsWith("airlock: unknown transport 'carrier-pigeon'"), r.err());
    }

    @Test
    void explainsAMissingHypervisorInOneLine(@TempDir Path dir) {
        Run r = run("vm", "list", "--socket", dir.resolve("none.sock").toString());
        assertEquals(Airlock.EXIT_ERROR, r.exitCode());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().contains("no hypervisor at"), r.err());
    }

    @Test
    @Timeout(60)
    void shouldManageVmsAndShowStatus(@TempDir Path dir) throws Exception {
        Path socket = dir.resolve("hv.sock");
        try (HypervisorDaemon daemon = HypervisorDaemon.start(socket, HypervisorConfig.DEFAULT)) {
            Path credential = HypervisorCommand.credentialFile(socket);
            Files.writeString(credential, daemon.controlCredential().toHex() + "\n", StandardCharsets.US_ASCII);
            String s = socket.toString();
            assertEquals(0, run("vm", "create", "host", "--primary", "--ram", "16M", "--socket", s).exitCode());
            Run created = run("vm", "create", "guest1", "--ram", "32M", "--socket", s);
            assertEquals(0, created.exitCode(), created.err());
            Path guestCredential = dir.resolve("hv.sock.d/guest1.credential");
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(guestCredential)));
            assertEquals(0, run("vm", "start", "guest1", "--socket", s).exitCode());
            Run list = run("vm", "list", "--socket", s);
            assertTrue(list.out().lines().anyMatch(l -> l.contains("guest1") && l.contains("running") && l.contains("32 MiB")), list.out());
            assertTrue(list.out().lines().anyMatch(l -> l.contains("host") && l.contains("primary") && l.contains("created")), list.out());
            assertEquals(0, run("vm", "stop", "guest1", "--socket", s).exitCode());
            Run status = run("status", "--socket", s);
            assertEquals(0, status.exitCode(), status.err());
            assertTrue(status.out().contains("2 VMs"), status.out());
            assertTrue(status.out().lines().anyMatch(l -> l.contains("guest1") && l.contains("stopped")), status.out());
            Run duplicate = run("vm", "create", "guest1", "--socket", s);
            assertEquals(Airlock.EXIT_ERROR, duplicate.exitCode(), duplicate.out());
            assertEquals(0, run("vm", "destroy", "guest1", "--socket", s).exitCode());
            assertFalse(Files.exists(guestCredential));
            Run unknown = run("vm", "start", "guest1", "--socket", s);
            assertTrue(unknown.err().contains("no VM named 'guest1'"), unknown.err());
        }
    }
}
