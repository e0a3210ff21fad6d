package dev.airlock.devices.blk;

import dev.airlock.dma.CoherentBuffer;
import dev.airlock.dma.DmaMappingException;
import dev.airlock.swiotlb.SwiotlbFullException;
import dev.airlock.transport.TransportException;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.DeviceStatus;
import dev.airlock.virtio.ScatterGather;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtqueueDriver;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;


/**
 * The driver thread of a {@link BlockDevice}: the only thread that touches the frontend and its
 * virtqueues after initialisation. Application threads hand it requests through a lock-free inbox
 * and a semaphore; the frontend's listener (the interrupt thread) only releases the semaphore. Each
 * turn it takes new requests, checks the device's health, adds as many waiting requests as the queue
 * depth, the descriptors and the bounce pool allow, kicks, and reaps.
 *
 * <p>Each request in a virtqueue holds a control slot in the shared region ({@link BlkControlSlots}).
 */
final class BlkDriverLoop implements Runnable {
    static final long SUPPORTED_FEATURES = VirtioFeatures.of(
            VirtioFeatures.VIRTIO_F_VERSION_1, VirtioFeatures.VIRTIO_F_EVENT_IDX,
            VirtioFeatures.VIRTIO_F_INDIRECT_DESC, BlkConfigLayout.VIRTIO_BLK_F_SIZE_MAX,
            BlkConfigLayout.VIRTIO_BLK_F_SEG_MAX, BlkConfigLayout.VIRTIO_BLK_F_BLK_SIZE, BlkConfigLayout.VIRTIO_BLK_F_FLUSH,
            BlkConfigLayout.VIRTIO_BLK_F_RO, BlkConfigLayout.VIRTIO_BLK_F_DISCARD, BlkConfigLayout.VIRTIO_BLK_F_WRITE_ZEROES,
            BlkConfigLayout.VIRTIO_BLK_F_MQ);
    private static final long IDLE_POLL_MS = 100;

    enum State { RUNNING, HELD, DETACHED, FAILED, CLOSED }

    private final VirtioFrontend frontend;
    private final BlockDeviceOptions options;
    private final BlkControlSlots slots;
    private final Semaphore wake = new Semaphore(0);
    private final ConcurrentLinkedQueue<BlkDriverRequest> inbox = new ConcurrentLinkedQueue<>();
    private final ConcurrentLinkedQueue<CompletableFuture<Void>> recoverCalls = new ConcurrentLinkedQueue<>();
    private final AtomicLong seq = new AtomicLong();
    private final ArrayDeque<BlkDriverRequest> waiting = new ArrayDeque<>();
    private final ScatterGather sg = new ScatterGather(8);
    private final CoherentBuffer control; // the control slots: freed by shutdown, after the device is reset
    private final boolean[] added; // per queue, during submitWaiting
    private final VirtqueueDriver.UsedHandler<BlkDriverRequest> onUsed = this::onUsed;
    private final Thread thread;
    private final AtomicLong completed = new AtomicLong();
    private final AtomicLong recoveries = new AtomicLong();
    private final AtomicLong missedWakeups = new AtomicLong();
    private volatile boolean configChanged;
    /** The transport reported a detach (backend gone); a failure seen after it is that detach, not the policy's business. */
    private volatile boolean detachSeen;
    private volatile boolean closing;
    private volatile State state = State.RUNNING;
    private volatile BlockDeviceInfo info;
    private volatile Throwable failure;
    private volatile long segmentBytes;
    private volatile long requestBytes;
    private int nextQueue;
    private int recoveriesInARow;

    BlkDriverLoop(String name, VirtioFrontend frontend, BlockDeviceOptions options, CoherentBuffer control) {
        this.frontend = frontend;
        this.options = options;
        this.control = control;
        this.slots = new BlkControlSlots(control, options.queueDepth());
        this.added = new boolean[options.maxQueues()];
        this.thread = Thread.ofPlatform().name("blk-driver:" + name).daemon().unstarted(this);
        frontend.setListener(new VirtioFrontend.Listener() {
            @Override
            public void onUsedBuffers() {
                wake.release();
            }

            @Override
            public void onConfigChange() {
                configChanged = true;
                wake.release();
            }

            @Override
            public void onBroken() {
                if (frontend.transport().isDetached()) {
                    detachSeen = true; // even if a new backend attaches before the loop looks
                }
                wake.release();
            }

            @Override
            public void onReattached() {
                wake.release();
            }
        });
    }

    /** Initialises the device (on the caller's thread, before {@link #start}; then on the loop thread only). */
    BlockDeviceInfo initialize() {
        // Cleared before the device starts: a change (DEVICE_NEEDS_RESET) signalled from here on is seen next turn.
        configChanged = false;
        int queues = 1;
        if (VirtioFeatures.has(frontend.transport().deviceFeatures(), BlkConfigLayout.VIRTIO_BLK_F_MQ)) {
            byte[] n = new byte[2];
            frontend.readConfig(BlkConfigLayout.NUM_QUEUES_OFFSET, n);
            queues = Math.clamp((n[0] & 0xff) | (n[1] & 0xff) << 8, 1, options.maxQueues());
        }
        int[] sizes = new int[queues];
        Arrays.fill(sizes, options.queueSize());
        long features = frontend.initialize(BlkDevice.DEVICE_ID, SUPPORTED_FEATURES, sizes);
        for (int q = 0; q < queues; q++) {
            if (frontend.queue(q).size() < 4) {
                frontend.reset();
                throw new TransportException(frontend.transport().name() + ": queue " + q + " of size "
                        + frontend.queue(q).size() + " cannot hold a request with data (at least 4 needed)");
            }
        }
        BlockDeviceInfo read = BlockDeviceInfo.read(frontend, features, queues);
        computeLimits(read);
        info = read;
        return read;
    }

    void start() {
        thread.start();
    }

    BlockDeviceInfo info() {
        return info;
    }

    State state() {
        return state;
    }

    long completedRequests() {
        return completed.get();
    }

    long missedWakeups() {
        return missedWakeups.get();
    }

    long recoveries() {
        return recoveries.get();
    }

    /** The largest data buffer the driver puts in one descriptor (set at initialisation). */
    long segmentBytes() {
        return segmentBytes;
    }

    /** The most data bytes per virtio request (set at initialisation). */
    long requestBytes() {
        return requestBytes;
    }

    /** Derives the request limits from the device's and the pool's (on the initialising thread). */
    private void computeLimits(BlockDeviceInfo read) {
        long segment = Math.min(read.sizeMax(), frontend.pool().maxMappingSize()) & -(long) BlkRequestLayout.SECTOR_SIZE;
        int queueSize = Integer.MAX_VALUE;
        for (int q = 0; q < read.queueCount(); q++) {
            queueSize = Math.min(queueSize, frontend.queue(q).size());
        }
        // A request takes a header and a status descriptor besides its data; with a direct chain
        // (no indirect table) it must fit the queue.
        long buffers = Math.max(1, Math.min(read.segMax(), queueSize - 2));
        segmentBytes = segment;
        requestBytes = Math.min(options.maxRequestBytes(), segment * buffers) & -(long) BlkRequestLayout.SECTOR_SIZE;
    }

    /** Hands a request to the loop (any thread). */
    CompletableFuture<Void> submit(BlkDriverRequest request) {
        request.seq = seq.getAndIncrement();
        if (state == State.FAILED || state == State.CLOSED || closing) {
            request.future.completeExceptionally(new BlkDeviceFailedException(describeFailure(), failure));
            return request.future;
        }
        inbox.add(request);
        if (state == State.CLOSED && inbox.remove(request)) {
            // shutdown drained the inbox between the check above and the add: nobody else will
            request.future.completeExceptionally(new BlkDeviceFailedException(describeFailure(), failure));
        }
        wake.release();
        return request.future;
    }

    /** Asks the loop to reset, re-initialise and resubmit (any thread). */
    CompletableFuture<Void> recover() {
        CompletableFuture<Void> done = new CompletableFuture<>();
        if (closing) {
            done.completeExceptionally(new BlkDeviceFailedException("block device is closed", null));
            return done;
        }
        recoverCalls.add(done);
        wake.release();
        return done;
    }

    /** Stops the loop: fails everything pending, resets the device; waits for the thread. */
    void close() {
        closing = true;
        wake.release();
        if (Thread.currentThread() == thread) {
            return; // called from a completion on the loop itself: the loop ends after this turn
        }
        boolean interrupted = false;
        while (thread.isAlive()) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (!thread.isAlive() && state != State.CLOSED) {
            shutdown(); // never started
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void run() {
        try {
            while (!closing) {
                boolean progress = takeInbox() | takeRecoverCalls();
                if (state == State.DETACHED && !frontend.transport().isDetached()) {
                    progress = true;
                    reattach();
                }
                if (state == State.RUNNING) {
                    try {
                        progress |= turn();
                    } catch (TransportException e) {
                        failure = e; // a kick or status read found the transport broken
                        onFailure();
                        progress = true;
                    }
                }
                if (!progress && !closing) {
                    if (!wake.tryAcquire(IDLE_POLL_MS, TimeUnit.MILLISECONDS) && state == State.RUNNING && slots.inUse() > 0) {
                        missedWakeups.incrementAndGet(); // a notification should have come: counted for tests
                    }
                    wake.drainPermits();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException | Error e) {
            failAll(e);
            throw e;
        } finally {
            shutdown();
        }
    }

    /** One turn while running; returns whether anything moved. */
    private boolean turn() {
        if (!healthy()) {
            onFailure();
            return true;
        }
        if (slots.inUse() > 0) {
            // While this loop is awake it reaps by itself: no used-buffer interrupts (virtio-blk does the
            // same). They are re-enabled, with the re-check, before the loop goes to sleep below.
            for (int q = 0; q < info.queueCount(); q++) {
                frontend.queue(q).disableCallbacks();
            }
        }
        boolean progress = submitWaiting();
        progress |= reap();
        if (!progress && slots.inUse() > 0) {
            for (int q = 0; q < info.queueCount(); q++) {
                if (!frontend.queue(q).enableCallbacks()) {
                    progress = true; // more used entries arrived, or the queue broke: look again
                }
            }
        }
        return progress;
    }

    private boolean takeInbox() {
        boolean any = false;
        for (BlkDriverRequest r; (r = inbox.poll()) != null; ) {
            any = true;
            if (state == State.FAILED || state == State.CLOSED) {
                r.future.completeExceptionally(new BlkDeviceFailedException(describeFailure(), failure));
            } else {
                waiting.addLast(r);
            }
        }
        return any;
    }

    private boolean takeRecoverCalls() {
        boolean any = false;
        for (CompletableFuture<Void> call; (call = recoverCalls.poll()) != null; ) {
            any = true;
            recoveriesInARow = 0;
            try {
                recoverNow();
                call.complete(null);
            } catch (RuntimeException e) {
                failAll(e);
                call.completeExceptionally(new BlkDeviceFailedException("recovery failed: " + e.getMessage(), e));
            }
        }
        return any;
    }

    private boolean healthy() {
        for (int q = 0; q < info.queueCount(); q++) {
            if (frontend.queue(q).isBroken()) {
                failure = new BlkDeviceFailedException("queue " + q + " broken: " + frontend.queue(q).fault().message(), null);
                return false;
            }
        }
        if (frontend.transport().isBroken()) {
            failure = new BlkDeviceFailedException("transport " + frontend.transport().name() + " is broken", null);
            return false;
        }
        if (configChanged) {
            configChanged = false;
            try {
                if ((frontend.status() & DeviceStatus.DEVICE_NEEDS_RESET) != 0) {
                    failure = new BlkDeviceFailedException("device " + frontend.transport().name() + " needs a reset", null);
                    return false;
                }
            } catch (TransportException e) {
                failure = e;
                return false;
            }
        }
        return true;
    }

    private void onFailure() {
        if (frontend.transport().isDetached() || detachSeen) {
            detachSeen = false;
            state = State.DETACHED; // the backend process is gone: keep everything until a new one attaches
            return;
        }
        if (frontend.transport().isBroken()) {
            failAll(failure); // the device's VM is gone: no reset can bring this transport back
            return;
        }
        switch (options.failurePolicy()) {
            case HOLD -> state = State.HELD;
            case FAIL -> failAll(failure);
            case RECOVER -> {
                while (recoveriesInARow < options.maxRecoveries()) {
                    recoveriesInARow++; // cleared by the next completion
                    try {
                        recoverNow();
                        return;
                    } catch (TransportException e) {
                        failure = e; // the device failed again while being set up: try again
                        if (frontend.transport().isBroken()) {
                            break;
                        }
                    } catch (RuntimeException e) {
                        failure = e; // rings could not be allocated, say: not worth retrying
                        break;
                    }
                }
                failAll(failure);
            }
        }
    }

    /**
     * A new backend attached: re-initialise the device and resubmit what was in flight. A backend
     * that keeps going away before completing anything (one that hangs up after each handshake,
     * say) would cycle forever; after {@code maxRecoveries} reattaches in a row with requests
     * pending and none completed, the requests fail instead.
     */
    private void reattach() {
        if (slots.inUse() > 0 || !waiting.isEmpty()) {
            if (recoveriesInARow >= options.maxRecoveries()) {
                failAll(new BlkDeviceFailedException("the device's backend went away " + (recoveriesInARow + 1)
                        + " times in a row without completing a request", failure));
                return;
            }
            recoveriesInARow++; // cleared by the next completion
        }
        try {
            recoverNow();
        } catch (TransportException e) {
            failure = e;
            if (!frontend.transport().isDetached()) {
                onFailure(); // not another detach: the usual policy
            }
        }
    }

    /**
     * Resets the device (so it no longer touches the rings), takes back every request in flight,
     * re-initialises, and puts those requests first in line in their original order.
     */
    private void recoverNow() {
        detachSeen = false; // whatever detached, this reset starts from the device as it is now
        frontend.transport().writeStatus(0);
        if (frontend.status() != 0) {
            throw new TransportException(frontend.transport().name() + ": status not 0 after reset");
        }
        List<BlkDriverRequest> held = detachInFlight();
        held.sort(Comparator.comparingLong((BlkDriverRequest r) -> r.seq).reversed());
        for (BlkDriverRequest r : held) {
            waiting.addFirst(r);
        }
        initialize();
        recoveries.incrementAndGet();
        state = State.RUNNING;
    }

    /** Takes every request out of the virtqueues (the device must be reset); returns them. */
    private List<BlkDriverRequest> detachInFlight() {
        List<BlkDriverRequest> held = new ArrayList<>();
        for (int q = 0; q < frontend.queueCount(); q++) {
            VirtqueueDriver<BlkDriverRequest> queue = frontend.queue(q);
            queue.detachUnused(held::add);
        }
        slots.clear();
        return held;
    }

    /** Fails every pending request; the device is reset if it still answers. */
    private void failAll(Throwable cause) {
        failure = cause;
        state = State.FAILED;
        List<BlkDriverRequest> pending = new ArrayList<>();
        try {
            frontend.reset();
        } catch (RuntimeException e) {
            // The device does not answer (its VM is gone); its rings are released with the frontend.
        }
        pending.addAll(slots.clear());
        pending.addAll(waiting);
        waiting.clear();
        for (BlkDriverRequest r; (r = inbox.poll()) != null; ) {
            pending.add(r);
        }
        BlkDeviceFailedException e = new BlkDeviceFailedException(describeFailure(), cause);
        for (BlkDriverRequest r : pending) {
            r.future.completeExceptionally(e);
        }
    }

    private String describeFailure() {
        Throwable f = failure;
        if (closing || state == State.CLOSED) {
            return "block device is closed";
        }
        return "block device failed" + (f != null ? ": " + f.getMessage() : "");
    }

    private void shutdown() {
        if (state == State.CLOSED) {
            return;
        }
        failAll(failure); // resets the device if it still answers: it no longer writes the control slots
        state = State.CLOSED;
        BlkDeviceFailedException closed = new BlkDeviceFailedException(describeFailure(), failure);
        for (BlkDriverRequest r; (r = inbox.poll()) != null; ) {
            r.future.completeExceptionally(closed); // submitted while failAll ran; submit re-checks after this
        }
        for (CompletableFuture<Void> call; (call = recoverCalls.poll()) != null; ) {
            call.completeExceptionally(new BlkDeviceFailedException("block device is closed", null));
        }
        try {
            frontend.dma().freeCoherent(control);
        } catch (RuntimeException e) {
            // the frontend was closed first: its pool, and the control slots with it, are gone already
        }
    }

    /** Adds waiting requests while the depth, descriptors and pool allow; kicks. */
    private boolean submitWaiting() {
        int queues = info.queueCount();
        Arrays.fill(added, false);
        boolean any = false;
        while (!waiting.isEmpty() && !slots.full()) {
            BlkDriverRequest r = waiting.peekFirst();
            int q = add(r);
            if (q == NO_ROOM) {
                break;
            }
            waiting.pollFirst();
            any = true;
            if (q >= 0) {
                added[q] = true;
            }
        }
        for (int q = 0; q < queues; q++) {
            if (added[q]) {
                frontend.kick(q);
            }
        }
        return any;
    }

    private static final int NO_ROOM = -1;
    private static final int FAILED = -2;

    /** Tries to add one request to some queue; returns the queue, {@link #NO_ROOM} or {@link #FAILED}. */
    private int add(BlkDriverRequest r) {
        int slot = slots.take(r, sg);
        int queues = info.queueCount();
        try {
            for (int i = 0; i < queues; i++) {
                int q = (nextQueue + i) % queues;
                if (frontend.<BlkDriverRequest>queue(q).add(sg, r)) {
                    nextQueue = (q + 1) % queues;
                    slots.hold(slot, r);
                    return q;
                }
            }
            slots.release(slot);
            return NO_ROOM;
        } catch (DmaMappingException e) {
            slots.release(slot);
            if (e.getCause() instanceof SwiotlbFullException && slots.inUse() > 0) {
                return NO_ROOM; // the bounce pool frees up as requests complete
            }
            r.future.completeExceptionally(new IOException("request of " + (sg.outBytes() + sg.inBytes())
                    + " bytes cannot be bounced: " + e.getMessage(), e));
            return FAILED;
        } catch (IllegalArgumentException e) {
            // Split for an earlier initialisation whose queues were larger (a recovery changed them).
            slots.release(slot);
            r.future.completeExceptionally(new IOException("request does not fit the queues: " + e.getMessage(), e));
            return FAILED;
        }
    }

    private boolean reap() {
        boolean any = false;
        for (int q = 0; q < info.queueCount(); q++) {
            any |= frontend.<BlkDriverRequest>queue(q).reap(onUsed, Integer.MAX_VALUE) > 0;
        }
        return any;
    }

    private void onUsed(BlkDriverRequest r, long lengthBytes) {
        int status = slots.complete(r);
        recoveriesInARow = 0;
        completed.incrementAndGet();
        switch (status) {
            case BlkRequestLayout.VIRTIO_BLK_S_OK -> r.future.complete(null);
            case BlkRequestLayout.VIRTIO_BLK_S_UNSUPP -> r.future.completeExceptionally(
                    new BlkUnsupportedException("request type " + r.type + " unsupported by the device"));
            case BlkRequestLayout.VIRTIO_BLK_S_IOERR -> r.future.completeExceptionally(
                    new BlkIoException("I/O error on request type " + r.type + " at sector " + r.sector, status));
            default -> r.future.completeExceptionally(
                    new BlkIoException("device wrote an invalid status for request type " + r.type, status));
        }
    }
}
