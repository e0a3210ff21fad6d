package dev.airlock.devices.blk;

import dev.airlock.transport.DeviceContext;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioProtocolException;
import dev.airlock.virtio.VirtqueueDevice;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

import static dev.airlock.devices.blk.BlkRequestLayout.SECTOR_SHIFT;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_S_IOERR;
import static dev.airlock.devices.blk.BlkRequestLayout.VIRTIO_BLK_S_OK;

/**
 * The thread that owns one request queue of a {@link BlkDevice} from activation to reset: the
 * transport's interrupt thread only {@link #kick}s it, and it pops chains, does the I/O, writes the
 * status, publishes used entries and notifies the driver. Only this thread touches the queue (the
 * virtqueue classes are not thread-safe).
 *
 * <p><b>No lost kick.</b> A kick sets {@code kicked} before it unparks; the worker clears the flag
 * before it drains, and drains until {@link VirtqueueDevice#enableNotifications()} finds the avail
 * ring empty after notifications were re-enabled, so a chain made available at any point is either
 * seen by this drain or followed by a kick that starts another.
 *
 * <p><b>Stop.</b> {@link #stop} sets a flag, unparks, and joins: the worker finishes the request in
 * hand (it never interrupts a thread in file I/O, which would close the channel) and touches the
 * rings no more.
 */
final class BlkQueueWorker implements Runnable {
    private static final System.Logger LOG = System.getLogger(BlkQueueWorker.class.getName());
    private static final long LOG_INTERVAL_NS = 1_000_000_000L;
    private static final AtomicLong LAST_LOG_NS = new AtomicLong(System.nanoTime() - LOG_INTERVAL_NS);

    private final VirtqueueDevice queue;
    private final int queueIndex;
    private final DeviceContext context;
    private final BlkRequestParser parser;
    private final BlkImage image;
    private final BlkMetrics metrics;
    private final byte[] serial;
    private final AtomicBoolean kicked = new AtomicBoolean(true);
    private final Thread thread;
    private volatile boolean stopped;

    BlkQueueWorker(String threadName, VirtqueueDevice queue, int queueIndex, DeviceContext context, BlkRequestParser parser,
                   BlkImage image, BlkMetrics metrics, String serial) {
        this.queue = queue;
        this.queueIndex = queueIndex;
        this.context = context;
        this.parser = parser;
        this.image = image;
        this.metrics = metrics;
        this.serial = serial.getBytes(StandardCharsets.US_ASCII);
        this.thread = Thread.ofPlatform().name(threadName).daemon().unstarted(this);
    }

    void start() {
        thread.start();
    }

    /** The driver notified the queue: wake the worker (from any thread, never blocks). */
    void kick() {
        if (!kicked.getAndSet(true)) {
            LockSupport.unpark(thread);
        }
    }

    /** Stops the worker and waits until it no longer touches the queue. */
    void stop() {
        stopped = true;
        LockSupport.unpark(thread);
        boolean interrupted = false;
        while (thread.isAlive()) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                interrupted = true; // keep waiting: returning early would let the worker touch freed rings
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void run() {
        try {
            while (!stopped) {
                if (kicked.getAndSet(false)) {
                    drain();
                } else {
                    LockSupport.park(this);
                }
            }
        } catch (VirtioProtocolException e) {
            fault(e.fault());
        } catch (RuntimeException e) {
            fault(new VirtioFault(queue.name(), "queue[" + queueIndex + "]", 0, "block device failed: " + e));
        }
    }

    /** Records a fault and parks until stopped: the queue is broken and the device needs a reset. */
    private void fault(VirtioFault fault) {
        if (stopped) {
            return;
        }
        queue.markBroken(fault);
        metrics.fault();
        context.reportFault(fault);
        while (!stopped) {
            LockSupport.park(this);
        }
    }

    private void drain() {
        do {
            queue.disableNotifications();
            DescriptorChain chain;
            while (!stopped && (chain = queue.pop()) != null) {
                handle(chain);
            }
        } while (!stopped && !queue.enableNotifications());
    }

    /** Serves one chain and publishes its used entry; notifies the driver if it asked. */
    private void handle(DescriptorChain chain) {
        BlkRequest request = parser.parse(chain);
        metrics.count(request);
        int status = execute(request);
        request.status().set(ValueLayout.JAVA_BYTE, 0, (byte) status);
        metrics.completed(status);
        boolean wroteData = request instanceof BlkRequest.Read || request instanceof BlkRequest.GetId;
        queue.addUsed(chain, wroteData ? chain.writableBytes() : 1);
        // Publishing per request lets the driver reap while the next one does its I/O.
        queue.publishUsed();
        if (queue.needsInterrupt()) {
            context.signalUsedBuffers(queueIndex);
        }
    }

    private int execute(BlkRequest request) {
        try {
            switch (request) {
                case BlkRequest.Read r -> {
                    image.read(r.sector() << SECTOR_SHIFT, r.data());
                    metrics.bytesRead(r.dataBytes());
                }
                case BlkRequest.Write w -> {
                    image.write(w.sector() << SECTOR_SHIFT, w.data());
                    metrics.bytesWritten(w.dataBytes());
                }
                case BlkRequest.Flush f -> image.flush();
                case BlkRequest.GetId g -> writeId(g.id());
                case BlkRequest.Discard d -> {
                    for (BlkRequest.Range range : d.ranges()) {
                        image.discard(range.sector() << SECTOR_SHIFT, range.numSectors() << SECTOR_SHIFT);
                    }
                }
                case BlkRequest.WriteZeroes z -> writeZeroes(z.ranges());
                case BlkRequest.Rejected r -> {
                    log(queue.name() + ": request refused with status " + r.statusCode() + ": " + r.reason());
                    return r.statusCode();
                }
            }
            return VIRTIO_BLK_S_OK;
        } catch (IOException e) {
            log(queue.name() + ": I/O error: " + e.getMessage());
            return VIRTIO_BLK_S_IOERR;
        }
    }

    private void writeZeroes(List<BlkRequest.Range> ranges) throws IOException {
        for (BlkRequest.Range range : ranges) {
            // The unmap flag lets the device deallocate; it does so only if write_zeroes_may_unmap says it may.
            image.writeZeroes(range.sector() << SECTOR_SHIFT, range.numSectors() << SECTOR_SHIFT,
                    range.unmap() && parser.writeZeroesMayUnmap());
        }
    }

    /** Writes the serial, zero-padded to the buffer (at most 20 bytes, §5.2.6). */
    private void writeId(List<MemorySegment> id) {
        long at = 0;
        for (MemorySegment s : id) {
            for (long i = 0; i < s.byteSize(); i++, at++) {
                s.set(ValueLayout.JAVA_BYTE, i, at < serial.length ? serial[(int) at] : 0);
            }
        }
    }

    /** Logs at most one line a second over all block devices: the guest controls how often this runs. */
    private static void log(String message) {
        long now = System.nanoTime();
        long last = LAST_LOG_NS.get();
        if (now - last >= LOG_INTERVAL_NS && LAST_LOG_NS.compareAndSet(last, now)) {
            LOG.log(System.Logger.Level.WARNING, message);
        }
    }
}
