package dev.airlock.vhostuser;

import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.devices.blk.BlkOptions;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;

/**
 * A vhost-user-blk back-end as its own process, for tests that kill it: {@code BlkBackendMain SOCKET IMAGE}.
 * Prints {@code LISTENING} once the socket is bound.
 */
public final class BlkBackendMain {
    private BlkBackendMain() {
    }

    public static void main(String[] args) throws Exception {
        Path socket = Path.of(args[0]);
        Path image = Path.of(args[1]);
        VhostUserBackend backend = VhostUserBackend.serve(socket, () -> openBlk(image));
        Runtime.getRuntime().addShutdownHook(new Thread(backend::close));
        System.out.println("LISTENING");
        System.out.flush();
        backend.awaitClosed();
    }

    static BlkDevice openBlk(Path image) {
        try {
            return BlkDevice.open(BlkOptions.builder(image).numQueues(1).build());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
