package dev.airlock.cli;

import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.process.Credential;
import dev.airlock.hypervisor.process.RemoteHypervisor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code airlock hypervisor} as a real process: a client creates a VM through it, SIGTERM cleans up. */
class HypervisorCommandTest {
    @Test
    void shouldServeClientsAndCleanUpOnSigterm(@TempDir Path dir) throws Exception {
        Path socket = dir.resolve("hv.sock");
        String java = ProcessHandle.current().info().command().orElseThrow();
        Process daemon = new ProcessBuilder(List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), Airlock.class.getName(), "hypervisor", "--socket", socket.toString()))
                .redirectError(ProcessBuilder.Redirect.INHERIT).start();
        try (BufferedReader out = new BufferedReader(new InputStreamReader(daemon.getInputStream(), StandardCharsets.UTF_8))) {
            String line = out.readLine();
            assertTrue(line != null && line.startsWith("airlock hypervisor: listening on " + socket), String.valueOf(line));
            Path credentialFile = HypervisorCommand.credentialFile(socket);
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(credentialFile)));
            Credential credential = Credential.fromHex(Files.readString(credentialFile).strip());
            try (RemoteHypervisor hypervisor = RemoteHypervisor.connect(socket, credential)) {
                VmId vm = hypervisor.createVm(VmSpec.primary("host", 1 << 20));
                assertEquals("host", hypervisor.vmInfo(vm).name());
                assertEquals(1, hypervisor.listVms().size());
                hypervisor.disconnect();
            }
            daemon.destroy(); // SIGTERM
            assertTrue(daemon.waitFor(20, TimeUnit.SECONDS), "daemon exits on SIGTERM");
            assertFalse(Files.exists(socket), "socket removed");
            assertFalse(Files.exists(credentialFile), "credential removed");
        } finally {
            daemon.destroyForcibly();
        }
    }
}
