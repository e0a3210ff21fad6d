package dev.airlock.vhostuser;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Checks a descriptor the front-end passed as a kick, call or err fd before the back-end keeps it.
 * It must be a non-blocking eventfd: a pipe or a socket would make the kick thread's 8-byte reads
 * fail, and a blocking fd (or a pipe nobody drains) would make a call block a device thread, and
 * with it every reset of the connection. QEMU and Airlock's front-end create them with
 * {@code EFD_NONBLOCK}. Linux tells both facts in {@code /proc/self/fd} and {@code /proc/self/fdinfo}.
 */
final class EventFds {
    private static final String EVENTFD_LINK = "anon_inode:[eventfd]";
    /** O_NONBLOCK in the octal {@code flags:} line of fdinfo (x86-64 and arm64). */
    private static final int O_NONBLOCK = 0x800;

    private EventFds() {
    }

    /**
     * Checks {@code fd}.
     *
     * @param what the message field, for the error
     * @throws VhostUserProtocolException if it is not a non-blocking eventfd (the caller closes it)
     */
    static void requireNonBlockingEventFd(String what, int fd) {
        String link;
        int flags;
        try {
            link = Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd)).toString();
            flags = fdinfoFlags(fd);
        } catch (IOException | NumberFormatException e) {
            throw new VhostUserProtocolException(what, fd, "cannot inspect the descriptor: " + e.getMessage());
        }
        if (!EVENTFD_LINK.equals(link)) {
            throw new VhostUserProtocolException(what, fd, "not an eventfd but " + link);
        }
        if ((flags & O_NONBLOCK) == 0) {
            throw new VhostUserProtocolException(what, fd, "a blocking eventfd (EFD_NONBLOCK is required)");
        }
    }

    private static int fdinfoFlags(int fd) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/fdinfo/" + fd))) {
            if (line.startsWith("flags:")) {
                return Integer.parseInt(line.substring("flags:".length()).trim(), 8);
            }
        }
        throw new IOException("no flags in fdinfo");
    }
}
