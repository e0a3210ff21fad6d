package dev.airlock.devices.console;

import java.io.IOException;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The backend's side of the one console port: the endpoint and two pump threads that move bytes
 * between it and two {@link ByteRing}s. The input pump reads the endpoint into {@link #input}
 * (waiting while it is full, so input is held, never dropped, until the guest posts buffers); the
 * output pump writes {@link #output} to the endpoint. Only these threads do endpoint I/O; the
 * queue workers touch the rings alone, and the pumps never touch a virtqueue. The port lives as
 * long as the device, across resets.
 */
final class ConsolePort implements AutoCloseable {
    static final int RING_BYTES = 64 * 1024;
    private static final int CHUNK_BYTES = 8 * 1024;
    private static final System.Logger LOG = System.getLogger(ConsolePort.class.getName());
    private static final long WARNING_INTERVAL_NS = 1_000_000_000L;

    final ByteRing input = new ByteRing(RING_BYTES);
    final ByteRing output = new ByteRing(RING_BYTES);
    private final ConsoleEndpoint endpoint;
    private final ConsoleMetrics metrics;
    private final Thread inputPump;
    private final Thread outputPump;
    private final AtomicLong lastWarningNs = new AtomicLong(System.nanoTime() - WARNING_INTERVAL_NS);
    private volatile boolean closed;
    private volatile long handedOver; // bytes the output pump took and finished writing; written by the pump only

    ConsolePort(ConsoleEndpoint endpoint, ConsoleMetrics metrics) {
        this.endpoint = Objects.requireNonNull(endpoint, "endpoint");
        this.metrics = metrics;
        this.inputPump = Thread.ofPlatform().daemon().name("console in " + endpoint.description()).unstarted(this::pumpInput);
        this.outputPump = Thread.ofPlatform().daemon().name("console out " + endpoint.description()).unstarted(this::pumpOutput);
    }

    void start() {
        inputPump.start();
        outputPump.start();
    }

    ConsoleEndpoint endpoint() {
        return endpoint;
    }

    private void pumpInput() {
        byte[] chunk = new byte[CHUNK_BYTES];
        try {
            int n;
            while (!closed && (n = endpoint.read(chunk, 0, chunk.length)) >= 0) {
                if (!input.put(chunk, 0, n)) {
                    return;
                }
            }
        } catch (IOException e) {
            if (!closed) {
                warn("input failed, no more input: " + e);
            }
        } catch (InterruptedException e) {
            // closing
        }
    }

    private void pumpOutput() {
        byte[] chunk = new byte[CHUNK_BYTES];
        try {
            int n;
            while ((n = output.take(chunk, 0, chunk.length)) >= 0) {
                try {
                    endpoint.write(chunk, 0, n);
                } catch (IOException e) {
                    if (closed) {
                        return;
                    }
                    metrics.recordOutputError();
                    warn(n + " bytes of output lost (" + metrics.outputErrors() + " failed writes so far): " + e);
                } finally {
                    handedOver += n; // written or lost: either way the pump holds nothing now
                }
            }
        } catch (InterruptedException e) {
            // closing
        }
    }

    /** Logs at most one line a second: a failing endpoint must not flood the log. */
    private void warn(String message) {
        long now = System.nanoTime();
        long last = lastWarningNs.get();
        if (now - last >= WARNING_INTERVAL_NS && lastWarningNs.compareAndSet(last, now)) {
            LOG.log(System.Logger.Level.WARNING, "console " + endpoint.description() + ": " + message);
        }
    }

    /**
     * Waits until the output pump has handed every buffered byte to the endpoint, at most
     * {@code timeoutMs}: the ring is empty and the pump has finished writing what it took out (an
     * empty ring alone would let a close cut off the chunk the pump is still writing).
     */
    boolean drainOutput(long timeoutMs) throws InterruptedException {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000;
        while (!output.isEmpty() || handedOver != output.takenBytes()) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            Thread.sleep(1);
        }
        return true;
    }

    /** Closes the endpoint and the rings and stops the pumps (a pump blocked in a stream read may linger). */
    @Override
    public void close() {
        closed = true;
        input.close();
        output.close();
        endpoint.close();
        inputPump.interrupt();
        outputPump.interrupt();
    }
}
