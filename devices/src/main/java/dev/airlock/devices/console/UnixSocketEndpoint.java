package dev.airlock.devices.console;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A console endpoint on a listening Unix domain socket that serves one client at a time: an
 * acceptor thread accepts a client whenever none is connected; further clients wait in the
 * backlog. The reader and the writer use the current client and drop it on end of stream or an
 * error, which lets the acceptor take the next.
 */
final class UnixSocketEndpoint implements ConsoleEndpoint {
    private final Path path;
    private final ServerSocketChannel server;
    private final Thread acceptor;
    private final Object lock = new Object();
    private SocketChannel client; // guarded by lock
    private boolean closed;       // guarded by lock

    UnixSocketEndpoint(Path path) throws IOException {
        this.path = path;
        this.server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            server.bind(UnixDomainSocketAddress.of(path));
        } catch (IOException e) {
            server.close();
            throw e;
        }
        this.acceptor = Thread.ofPlatform().daemon().name("console accept " + path).start(this::acceptLoop);
    }

    private void acceptLoop() {
        try {
            while (true) {
                synchronized (lock) {
                    while (client != null && !closed) {
                        lock.wait();
                    }
                    if (closed) {
                        return;
                    }
                }
                SocketChannel accepted = server.accept();
                synchronized (lock) {
                    if (closed) {
                        accepted.close();
                        return;
                    }
                    client = accepted;
                    lock.notifyAll();
                }
            }
        } catch (IOException | InterruptedException e) {
            // The server socket was closed: the endpoint is closing.
        }
    }

    /** The connected client, waiting for one; null once closed. */
    private SocketChannel awaitClient() throws IOException {
        synchronized (lock) {
            try {
                while (client == null && !closed) {
                    lock.wait();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new java.io.InterruptedIOException("interrupted waiting for a console client on " + path);
            }
            return closed ? null : client;
        }
    }

    /** Forgets {@code c} if it is still the client, so the acceptor takes the next one. */
    private void drop(SocketChannel c) {
        synchronized (lock) {
            if (client == c) {
                client = null;
                lock.notifyAll();
            }
        }
        try {
            c.close();
        } catch (IOException ignored) {
            // already unusable
        }
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        while (true) {
            SocketChannel c = awaitClient();
            if (c == null) {
                return -1;
            }
            try {
                int n = c.read(ByteBuffer.wrap(b, off, len));
                if (n > 0) {
                    return n;
                }
                if (n < 0) {
                    drop(c); // the client went away: wait for the next
                }
            } catch (IOException e) {
                drop(c);
            }
        }
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(b, off, len);
        while (bytes.hasRemaining()) {
            SocketChannel c = awaitClient();
            if (c == null) {
                throw new IOException("console socket " + path + " is closed");
            }
            try {
                while (bytes.hasRemaining()) {
                    c.write(bytes);
                }
            } catch (IOException e) {
                drop(c); // what is left goes to the next client
            }
        }
    }

    @Override
    public String description() {
        return "unix:" + path;
    }

    @Override
    public void close() {
        SocketChannel c;
        synchronized (lock) {
            if (closed) {
                return;
            }
            closed = true;
            c = client;
            client = null;
            lock.notifyAll();
        }
        try {
            server.close();
        } catch (IOException ignored) {
            // closing anyway
        }
        if (c != null) {
            try {
                c.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
        acceptor.interrupt();
        try {
            Files.deleteIfExists(path);
        } catch (IOException ignored) {
            // the socket file stays behind; binding the path again will say so
        }
    }

    @Override
    public String toString() {
        return "ConsoleEndpoint(" + description() + ")";
    }
}
