package dev.airlock.devices.console;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * What the console's port is connected to on the backend's side: a byte source (input for the
 * guest) and a byte sink (the guest's output). {@link ConsoleDevice} calls {@link #read} and
 * {@link #write} on its own pump threads, one reader and one writer, never on the transport's
 * interrupt thread, so both may block.
 */
public interface ConsoleEndpoint extends AutoCloseable {
    /**
     * Reads input for the guest, blocking until some is there.
     *
     * @param b   receives the bytes
     * @param off where in {@code b}
     * @param len the most to read, at least 1
     * @return bytes read, at least 1; or -1 when there will never be more input
     * @throws IOException if the input failed (the pump stops)
     */
    int read(byte[] b, int off, int len) throws IOException;

    /**
     * Writes the guest's output, blocking until it is all handed on.
     *
     * @param b   the bytes
     * @param off where in {@code b}
     * @param len how many
     * @throws IOException if the output failed (those bytes are lost; the pump carries on)
     */
    void write(byte[] b, int off, int len) throws IOException;

    /**
     * A short description for logs: {@code "stdio"}, {@code "unix:/run/c.sock"}, {@code "file:/var/log/c"}.
     *
     * @return the description
     */
    String description();

    /** Releases the endpoint; a blocked read or write returns or fails. Never throws. */
    @Override
    void close();

    /**
     * The backend process's standard input and output. Closing the endpoint leaves both open.
     *
     * @return the endpoint
     */
    static ConsoleEndpoint stdio() {
        return new StreamEndpoint("stdio", new FileInputStream(FileDescriptor.in), new FileOutputStream(FileDescriptor.out), false);
    }

    /**
     * A Unix domain socket the backend listens on, serving one client at a time: input is what the
     * client sends; output goes to the client, and waits while none is connected (nothing is
     * dropped; bytes written to a client that then vanishes may be lost). When a client
     * disconnects, the next one is accepted. The socket file is created, and deleted on close.
     *
     * @param path the socket's path; must not exist
     * @return the endpoint, listening
     * @throws UncheckedIOException if the socket cannot be bound
     */
    static ConsoleEndpoint unixSocket(Path path) {
        try {
            return new UnixSocketEndpoint(path);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot listen on " + path + ": " + e.getMessage(), e);
        }
    }

    /**
     * A file: output is appended to it (created if missing); there is no input.
     *
     * @param path the file
     * @return the endpoint
     * @throws UncheckedIOException if the file cannot be opened
     */
    static ConsoleEndpoint file(Path path) {
        try {
            OutputStream out = Files.newOutputStream(path, StandardOpenOption.CREATE, StandardOpenOption.APPEND,
                    StandardOpenOption.WRITE);
            return new StreamEndpoint("file:" + path, null, out, true);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot open " + path + ": " + e.getMessage(), e);
        }
    }

    /**
     * Any pair of streams (for embedding and tests). Closing the endpoint closes both.
     *
     * @param in  input for the guest, or null for none
     * @param out where the guest's output goes
     * @return the endpoint
     */
    static ConsoleEndpoint streams(InputStream in, OutputStream out) {
        return new StreamEndpoint("streams", in, out, true);
    }
}
