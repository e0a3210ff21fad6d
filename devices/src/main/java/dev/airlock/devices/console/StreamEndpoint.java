package dev.airlock.devices.console;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.Objects;

/** A console endpoint over an input stream (optional) and an output stream. */
final class StreamEndpoint implements ConsoleEndpoint {
    private final String description;
    private final InputStream in;
    private final OutputStream out;
    private final boolean closeStreams;
    private volatile boolean closed;

    StreamEndpoint(String description, InputStream in, OutputStream out, boolean closeStreams) {
        this.description = description;
        this.in = in;
        this.out = Objects.requireNonNull(out, "out");
        this.closeStreams = closeStreams;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        if (in == null || closed) {
            return -1;
        }
        int n;
        do {
            n = in.read(b, off, len);
        } while (n == 0);
        return n;
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        if (closed) {
            throw new IOException(description + " is closed");
        }
        out.write(b, off, len);
        out.flush();
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public void close() {
        closed = true;
        if (!closeStreams) {
            return;
        }
        try {
            if (in != null) {
                in.close();
            }
        } catch (IOException ignored) {
            // closing: nothing more to do with it
        }
        try {
            out.close();
        } catch (IOException ignored) {
            // closing: nothing more to do with it
        }
    }

    @Override
    public String toString() {
        return "ConsoleEndpoint(" + description + ")";
    }
}
