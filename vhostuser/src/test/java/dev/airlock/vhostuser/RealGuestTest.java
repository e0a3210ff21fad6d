package dev.airlock.vhostuser;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A real Linux guest (QEMU, TCG) drives our back-end through its own virtio drivers: QEMU is the
 * vhost-user front-end, the guest kernel's virtio-rng driver reads from a test entropy model.
 */
class RealGuestTest {
    @TempDir
    Path dir;

    @BeforeAll
    static void installed() {
        RealGuest.assumeInstalled();
    }

    @Test
    void shouldServeEntropyToARealGuest() throws Exception {
        Path sock = dir.resolve("rng.sock");
        TestRngModel model = new TestRngModel();
        try (VhostUserBackend backend = VhostUserBackend.serve(sock, () -> model)) {
            RealGuest.Result r = RealGuest.boot(dir, 240, "--vhost", "vhost-user-rng-pci=" + sock,
                    RealGuest.EXAMPLES.resolve("rng-read.sh").toString(), "--", "4096");
            assertEquals(0, r.exitCode(), r::toString);
            assertTrue(r.stdout().contains("RNG bytes=4096"), r::toString);
            assertTrue(model.bytesServed.get() >= 4096, "bytes served: " + model.bytesServed.get());
            assertTrue(backend.lastError() == null, () -> "the back-end closed a connection: " + backend.lastError());
        }
    }
    @Test
    void shouldServeEntropyOverVirtioMmio() throws Exception {
        Path sock = dir.resolve("rng.sock");
        TestRngModel model = new TestRngModel();
        try (VhostUserBackend backend = VhostUserBackend.serve(sock, () -> model)) {
            RealGuest.Result r = RealGuest.boot(dir, 240, "--machine", "microvm", "--vhost", "vhost-user-rng-pci=" + sock,
                    RealGuest.EXAMPLES.resolve("rng-read.sh").toString(), "--", "4096");
            assertEquals(0, r.exitCode(), r::toString);
            assertTrue(backend.lastError() == null, () -> "the back-end closed a connection: " + backend.lastError());
        }
    }

    private static final String REBIND_SCRIPT = """
            #!/bin/sh
            # Reads entropy, unbinds and rebinds the guest driver (the device is reset and its ring set
            # up again on the same vhost-user connection), then reads again.
            set -e
            dd if=/dev/hwrng of=/tmp/a bs=512 count=1 iflag=fullblock 2>/dev/null
            DRV=/sys/bus/virtio/drivers/virtio_rng
            DEV=$(basename "$(readlink -f $DRV/virtio*)")
            echo "$DEV" > $DRV/unbind
            echo "$DEV" > $DRV/bind
            sleep 1
            cat /sys/class/misc/hw_random/rng_current
            dd if=/dev/hwrng of=/tmp/b bs=512 count=8 iflag=fullblock 2>/dev/null
            [ "$(wc -c </tmp/b)" -eq 4096 ] && echo "REBIND OK $DEV"
            """;

    @Test
    void shouldServeEntropyAgainAfterTheGuestResetsTheDevice() throws Exception {
        Path sock = dir.resolve("rng.sock");
        Path script = dir.resolve("rebind.sh");
        java.nio.file.Files.writeString(script, REBIND_SCRIPT);
        TestRngModel model = new TestRngModel();
        try (VhostUserBackend backend = VhostUserBackend.serve(sock, () -> model)) {
            RealGuest.Result r = RealGuest.boot(dir, 240, "--vhost", "vhost-user-rng-pci=" + sock, script.toString());
            assertEquals(0, r.exitCode(), r::toString);
            assertTrue(r.stdout().contains("REBIND OK"), r::toString);
            assertTrue(model.bytesServed.get() >= 512 + 4096, "bytes served: " + model.bytesServed.get());
            assertTrue(model.activations.get() >= 2 && model.resets.get() >= 1, "the ring was not stopped and started again: "
                    + model.activations.get() + " activations, " + model.resets.get() + " resets");
            assertTrue(backend.lastError() == null, () -> "the back-end closed a connection: " + backend.lastError());
        }
    }
}
