package dev.airlock.bench;

import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.devices.blk.BlkOptions;
import dev.airlock.vhostuser.VhostUserBackend;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Airlock's vhost-user-blk backend as its own process, the child JVM of {@link VhostUserBlkBench}:
 * {@code VhostUserBlkBackendMain SOCKET IMAGE} serves a {@link BlkDevice} over {@code IMAGE} (one
 * request queue) on the Unix socket {@code SOCKET}. Prints {@code LISTENING} once the socket is
 * bound and listening, and logs warnings and errors only (not each connection). Ends on SIGTERM, and
 * by itself when its parent process ends, so a benchmark fork that dies does not leave it behind.
 */
public final class VhostUserBlkBackendMain {
    /** The line printed on standard output once the socket listens. */
    public static final String LISTENING = "LISTENING";

    private VhostUserBlkBackendMain() {
    }

    /**
     * Serves the image until terminated.
     *
     * @param args the socket path and the image path
     * @throws InterruptedException if interrupted while serving
     */
    public static void main(String[] args) throws InterruptedException {
        if (args.length != 2) {
            System.err.println("usage: VhostUserBlkBackendMain SOCKET IMAGE");
            System.exit(2);
        }
        Logger.getLogger("").setLevel(Level.WARNING);
        Path socket = Path.of(args[0]);
        Path image = Path.of(args[1]);
        VhostUserBackend backend = VhostUserBackend.serve(socket, () -> openBlk(image));
        Runtime.getRuntime().addShutdownHook(new Thread(backend::close));
        ProcessHandle.current().parent().ifPresent(parent -> parent.onExit().thenRun(() -> System.exit(0)));
        System.out.println(LISTENING);
        System.out.flush();
        backend.awaitClosed();
    }

    private static BlkDevice openBlk(Path image) {
        try {
            return BlkDevice.open(BlkOptions.builder(image).numQueues(1).build());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open " + image, e);
        }
    }
}
