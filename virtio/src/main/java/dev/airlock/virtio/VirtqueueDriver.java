package dev.airlock.virtio;

import dev.airlock.dma.CoherentBuffer;
import dev.airlock.dma.DmaMappingException;
import dev.airlock.dma.DmaOps;
import dev.airlock.swiotlb.DmaDirection;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.Objects;
import java.util.function.Consumer;

import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_INDIRECT;
import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_NEXT;
import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_WRITE;

/**
 * The driver (guest) side of one split virtqueue (VIRTIO 1.2 §2.7), in the manner of Linux's
 * {@code virtio_ring.c}. It owns the three rings, allocated with {@link DmaOps#allocCoherent}, and
 * maps every buffer through {@link DmaOps#mapSingle} so that descriptors only ever hold DMA
 * addresses.
 *
 * <p><b>Untrusted device.</b> Everything the device writes (the used ring) is read once per field
 * and checked against a private shadow of what this side wrote: per head the chain length, the
 * mapped DMA addresses and lengths, the writable byte count and the token. Freeing a chain never
 * reads the descriptor table. A used entry with an id that is not a live head, a length above the
 * chain's writable bytes, or a used idx that moves past the chains in flight marks the queue
 * broken ({@link #fault()}); a broken queue takes no new requests and returns nothing.
 *
 * <p><b>Indirect policy.</b> With {@link VirtioFeatures#VIRTIO_F_INDIRECT_DESC}, a request of 2 to
 * {@code maxIndirectEntries} buffers goes in an indirect table and takes one ring descriptor;
 * single buffers and longer requests take one descriptor per buffer. Each head has its own table,
 * allocated coherent on first use (in 4 KiB chunks) and kept, so the steady state allocates
 * nothing.
 *
 * <p><b>Threading.</b> One thread at a time calls {@link #add}, {@link #kickPrepare},
 * {@link #reap}, {@link #enableCallbacks}, {@link #disableCallbacks} and {@link #detachUnused}
 * (the caller serializes, as Linux requires); no locks are taken. {@link #isBroken()} and
 * {@link #fault()} may be read from any thread.
 *
 * @param <T> the type of the token handed back for each completed request
 */
public final class VirtqueueDriver<T> implements AutoCloseable {
    /**
     * Receives each chain the device has used.
     *
     * @param <T> the token type
     */
    @FunctionalInterface
    public interface UsedHandler<T> {
        /**
         * One request completed.
         *
         * @param token       the token given to {@link #add}
         * @param lengthBytes the bytes the device wrote into the in buffers, at most their total
         */
        void onUsed(T token, long lengthBytes);
    }

    /** Default cap on the buffers per indirect table. */
    public static final int DEFAULT_MAX_INDIRECT_ENTRIES = 64;
    /** Rings and indirect tables are cache-line aligned (above the spec's 16/2/4). */
    static final int RING_ALIGNMENT = 64;
    private static final int INDIRECT_CHUNK_BYTES = 4096;
    /** Written to used_event to mean "no interrupt for now": it cannot fall among the next size entries. */
    private static final int USED_EVENT_FAR = 0x8000;

    private final String name;
    private final DmaOps dma;
    private final int size;
    private final int mask;
    private final boolean eventIdx;
    private final int maxIndirectEntries;
    private final CoherentBuffer descBuffer;
    private final CoherentBuffer availBuffer;
    private final CoherentBuffer usedBuffer;
    private final MemorySegment desc;
    private final MemorySegment avail;
    private final MemorySegment used;
    private final long usedEventOffset;
    private final long availEventOffset;

    // Private shadow of what this side wrote; never read back from shared memory.
    private final int[] descNext;              // free-list link of a free descriptor, chain link of a busy one
    private final long[] descDmaAddr;          // the mapping behind each direct descriptor
    private final long[] descLength;
    private final boolean[] descWritable;
    private final boolean[] descPremapped; // given as a DMA address: neither mapped nor unmapped here
    private final int[] chainDescCount;        // per head: ring descriptors the chain holds; 0 = not a live head
    private final boolean[] chainIndirect;
    private final long[] chainWritableBytes;
    private final Object[] chainToken;
    private final IndirectTable[] indirectTables;
    private final CoherentBuffer[] indirectChunks;
    private final int tablesPerChunk;

    private int freeHead;
    private int numFree;
    private int availIdx;
    private int numAdded;
    private int lastUsedIdx;
    private int inFlight;
    private int availFlags;
    private boolean callbacksEnabled = true;
    private boolean closed;
    private volatile VirtioFault fault;

    /** An indirect table and the shadow of the buffers it describes. */
    private static final class IndirectTable {
        final MemorySegment segment;
        final long tableDmaAddr;
        final long[] dmaAddr;
        final long[] length;
        final boolean[] writable;
        final boolean[] premapped;
        int count;

        IndirectTable(MemorySegment segment, long tableDmaAddr, int capacity) {
            this.segment = segment;
            this.tableDmaAddr = tableDmaAddr;
            this.dmaAddr = new long[capacity];
            this.length = new long[capacity];
            this.writable = new boolean[capacity];
            this.premapped = new boolean[capacity];
        }
    }

    /**
     * Creates a queue with indirect tables of up to {@code min(queueSize, 64)} buffers.
     *
     * @param name               for fault records and messages, for example {@code "blk0.requestq"}
     * @param dma                the device's DMA operations
     * @param queueSize          a power of two, 1 to 32768
     * @param negotiatedFeatures the features in force (INDIRECT_DESC and EVENT_IDX matter here)
     * @throws DmaMappingException if the rings cannot be allocated
     */
    public VirtqueueDriver(String name, DmaOps dma, int queueSize, long negotiatedFeatures) {
        this(name, dma, queueSize, negotiatedFeatures, Math.min(queueSize, DEFAULT_MAX_INDIRECT_ENTRIES));
    }

    /**
     * Creates a queue.
     *
     * @param name               for fault records and messages
     * @param dma                the device's DMA operations
     * @param queueSize          a power of two, 1 to 32768
     * @param negotiatedFeatures the features in force
     * @param maxIndirectEntries the most buffers per indirect table, 0 to {@code queueSize}; 0 or 1
     *                           means indirect tables are never used
     * @throws DmaMappingException      if the rings cannot be allocated
     * @throws IllegalArgumentException for a bad size or cap
     */
    public VirtqueueDriver(String name, DmaOps dma, int queueSize, long negotiatedFeatures, int maxIndirectEntries) {
        this.name = Objects.requireNonNull(name, "name");
        this.dma = Objects.requireNonNull(dma, "dma");
        if (!Virtqueues.isValidQueueSize(queueSize)) {
            throw new IllegalArgumentException("queue size must be a power of two from 1 to 32768: " + queueSize);
        }
        if (maxIndirectEntries < 0 || maxIndirectEntries > queueSize) {
            throw new IllegalArgumentException("maxIndirectEntries must be 0 to " + queueSize + ": " + maxIndirectEntries);
        }
        this.size = queueSize;
        this.mask = queueSize - 1;
        this.eventIdx = VirtioFeatures.has(negotiatedFeatures, VirtioFeatures.VIRTIO_F_EVENT_IDX);
        boolean indirect = VirtioFeatures.has(negotiatedFeatures, VirtioFeatures.VIRTIO_F_INDIRECT_DESC) && maxIndirectEntries > 1;
        this.maxIndirectEntries = indirect ? maxIndirectEntries : 0;
        CoherentBuffer[] rings = allocateRings(dma, queueSize);
        this.descBuffer = rings[0];
        this.availBuffer = rings[1];
        this.usedBuffer = rings[2];
        this.desc = descBuffer.segment().asSlice(0, VirtqDescLayout.tableLengthBytes(queueSize));
        this.avail = availBuffer.segment().asSlice(0, VirtqAvailLayout.lengthBytes(queueSize));
        this.used = usedBuffer.segment().asSlice(0, VirtqUsedLayout.lengthBytes(queueSize));
        this.usedEventOffset = VirtqAvailLayout.usedEventOffset(queueSize);
        this.availEventOffset = VirtqUsedLayout.availEventOffset(queueSize);
        this.descNext = new int[queueSize];
        this.descDmaAddr = new long[queueSize];
        this.descLength = new long[queueSize];
        this.descWritable = new boolean[queueSize];
        this.descPremapped = new boolean[queueSize];
        this.chainDescCount = new int[queueSize];
        this.chainIndirect = new boolean[queueSize];
        this.chainWritableBytes = new long[queueSize];
        this.chainToken = new Object[queueSize];
        int tableBytes = this.maxIndirectEntries * VirtqDescLayout.DESC_LENGTH;
        this.tablesPerChunk = indirect ? Math.min(queueSize, Math.max(1, INDIRECT_CHUNK_BYTES / tableBytes)) : 1;
        this.indirectTables = indirect ? new IndirectTable[queueSize] : null;
        this.indirectChunks = indirect ? new CoherentBuffer[(queueSize + tablesPerChunk - 1) / tablesPerChunk] : null;
        initFreeList();
    }

    private static CoherentBuffer[] allocateRings(DmaOps dma, int queueSize) {
        long[] lengths = {VirtqDescLayout.tableLengthBytes(queueSize), VirtqAvailLayout.lengthBytes(queueSize),
                VirtqUsedLayout.lengthBytes(queueSize)};
        // The device needs the spec alignment of the DMA address (§2.7.2); this side's aligned
        // var handles need it of the CPU address.
        int[] specAlignment = {VirtqDescLayout.TABLE_ALIGNMENT, VirtqAvailLayout.ALIGNMENT, VirtqUsedLayout.ALIGNMENT};
        CoherentBuffer[] rings = new CoherentBuffer[3];
        try {
            for (int r = 0; r < 3; r++) {
                rings[r] = dma.allocCoherent(lengths[r], RING_ALIGNMENT);
                if (rings[r].sizeBytes() < lengths[r] || (rings[r].dmaAddr() & (specAlignment[r] - 1)) != 0
                        || (rings[r].segment().address() & (specAlignment[r] - 1)) != 0) {
                    throw new DmaMappingException("allocCoherent returned a short or misaligned ring: " + rings[r]);
                }
            }
            return rings;
        } catch (RuntimeException e) {
            for (CoherentBuffer b : rings) {
                if (b != null) {
                    dma.freeCoherent(b);
                }
            }
            throw e;
        }
    }

    private void initFreeList() {
        for (int i = 0; i < size; i++) {
            descNext[i] = i + 1;
        }
        freeHead = 0;
        numFree = size;
    }

    /**
     * Offers a request to the device: maps each buffer, writes the descriptors (or an indirect
     * table), then the avail ring entry, then publishes the avail idx (§2.7.13). The device is not
     * told; call {@link #kickPrepare()} after one or more adds.
     *
     * @param sg    the buffers, at least one; read during the call only
     * @param token handed back by {@link #reap} when the device has used the request; not null
     * @return true if added; false if the queue lacks free descriptors (reap and retry) or is broken
     * @throws DmaMappingException      if a buffer cannot be mapped (nothing stays mapped or added)
     * @throws IllegalArgumentException if {@code sg} is empty or longer than the queue
     * @throws IllegalStateException    if the queue is closed
     */
    public boolean add(ScatterGather sg, T token) {
        Objects.requireNonNull(token, "token");
        int n = sg.count();
        if (n == 0 || n > size) {
            throw new IllegalArgumentException("a request needs 1 to " + size + " buffers on queue '" + name + "': " + n);
        }
        if (closed) {
            throw new IllegalStateException("queue '" + name + "' is closed");
        }
        if (fault != null) {
            return false;
        }
        boolean indirect = n > 1 && n <= maxIndirectEntries;
        int needed = indirect ? 1 : n;
        if (numFree < needed) {
            return false;
        }
        int head = freeHead;
        if (indirect) {
            writeIndirect(sg, head);
        } else {
            writeDirect(sg, head);
        }
        chainDescCount[head] = needed;
        chainIndirect[head] = indirect;
        chainWritableBytes[head] = sg.inBytes();
        chainToken[head] = token;
        publishAvail(head);
        return true;
    }

    /** Maps and writes {@code n} descriptors along the free list from {@code head}. */
    private void writeDirect(ScatterGather sg, int head) {
        int n = sg.count();
        int i = head;
        for (int k = 0; k < n; k++) {
            boolean writable = sg.isWritable(k);
            try {
                descDmaAddr[i] = map(sg, k);
            } catch (RuntimeException e) {
                unmapDirect(head, k);
                throw e;
            }
            descLength[i] = sg.lengthBytes(k);
            descWritable[i] = writable;
            descPremapped[i] = sg.isPremapped(k);
            boolean last = k == n - 1;
            writeDesc(desc, i, descDmaAddr[i], descLength[i],
                    (writable ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), last ? 0 : descNext[i]);
            i = descNext[i];
        }
        freeHead = i;
        numFree -= n;
    }

    /** Maps the buffers into the head's indirect table and points the head descriptor at it. */
    private void writeIndirect(ScatterGather sg, int head) {
        IndirectTable table = indirectTable(head);
        int n = sg.count();
        for (int k = 0; k < n; k++) {
            boolean writable = sg.isWritable(k);
            try {
                table.dmaAddr[k] = map(sg, k);
            } catch (RuntimeException e) {
                table.count = k;
                unmapIndirect(table);
                throw e;
            }
            table.length[k] = sg.lengthBytes(k);
            table.writable[k] = writable;
            table.premapped[k] = sg.isPremapped(k);
            boolean last = k == n - 1;
            writeDesc(table.segment, k, table.dmaAddr[k], table.length[k],
                    (writable ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT), last ? 0 : k + 1);
        }
        table.count = n;
        writeDesc(desc, head, table.tableDmaAddr, (long) n * VirtqDescLayout.DESC_LENGTH, VIRTQ_DESC_F_INDIRECT, 0);
        freeHead = descNext[head];
        numFree -= 1;
    }

    private static void writeDesc(MemorySegment table, int index, long addr, long length, int flags, int next) {
        long base = VirtqDescLayout.descOffset(index);
        VirtqDescLayout.ADDR.set(table, base, addr);
        VirtqDescLayout.LEN.set(table, base, (int) length);
        VirtqDescLayout.FLAGS.set(table, base, (short) flags);
        VirtqDescLayout.NEXT.set(table, base, (short) next);
    }

    private IndirectTable indirectTable(int head) {
        IndirectTable table = indirectTables[head];
        if (table == null) {
            long tableBytes = (long) maxIndirectEntries * VirtqDescLayout.DESC_LENGTH;
            int chunk = head / tablesPerChunk;
            CoherentBuffer buffer = indirectChunks[chunk];
            if (buffer == null) {
                buffer = dma.allocCoherent(tableBytes * tablesPerChunk, RING_ALIGNMENT);
                indirectChunks[chunk] = buffer;
            }
            long offset = tableBytes * (head % tablesPerChunk);
            table = new IndirectTable(buffer.segment().asSlice(offset, tableBytes), buffer.dmaAddr() + offset, maxIndirectEntries);
            indirectTables[head] = table;
        }
        return table;
    }

    private void publishAvail(int head) {
        VirtqAvailLayout.U16.set(avail, VirtqAvailLayout.ringEntryOffset(availIdx & mask), (short) head);
        availIdx = (availIdx + 1) & Virtqueues.IDX_MASK;
        // Publishes the descriptors (or indirect table) and the ring entry written above; pairs with
        // the getAcquire of avail.idx in VirtqueueDevice.pop (§2.7.13.3).
        VirtqAvailLayout.IDX.setRelease(avail, 0L, (short) availIdx);
        numAdded++;
        inFlight++;
    }

    /**
     * Decides whether the device must be notified of the requests added since the last call
     * (§2.7.10): with EVENT_IDX, whether the new avail idx passed the device's {@code avail_event};
     * otherwise, whether the device left {@code VIRTQ_USED_F_NO_NOTIFY} clear.
     *
     * @return whether to send an available buffer notification
     */
    public boolean kickPrepare() {
        if (numAdded == 0 || fault != null) {
            return false;
        }
        // The avail idx store must be visible before avail_event or used.flags is read, or both
        // sides could decide the other will act (lost notification). Pairs with the full fence in
        // VirtqueueDevice.enableNotifications between its avail_event store and avail idx re-read.
        VarHandle.fullFence();
        int oldIdx = (availIdx - numAdded) & Virtqueues.IDX_MASK;
        boolean needed;
        if (eventIdx) {
            int availEvent = (short) VirtqUsedLayout.U16.get(used, availEventOffset) & Virtqueues.IDX_MASK;
            needed = numAdded > Virtqueues.IDX_MASK || Virtqueues.needEvent(availEvent, availIdx, oldIdx);
        } else {
            int usedFlags = (short) VirtqUsedLayout.FLAGS.get(used, 0L);
            needed = (usedFlags & VirtqUsedLayout.VIRTQ_USED_F_NO_NOTIFY) == 0;
        }
        numAdded = 0;
        return needed;
    }

    /**
     * Hands completed requests to {@code handler}, in used-ring order: validates each used element,
     * unmaps the chain's buffers (copying in-buffer data back for bounce mappings), frees its
     * descriptors and returns its token.
     *
     * @param handler    receives each token and used length; an exception from it propagates after
     *                   that entry has been consumed
     * @param maxEntries the most entries to consume, at least 1
     * @return the number consumed; 0 when none are pending or the queue is broken
     */
    public int reap(UsedHandler<? super T> handler, int maxEntries) {
        if (maxEntries < 1) {
            throw new IllegalArgumentException("maxEntries must be positive: " + maxEntries);
        }
        if (fault != null || closed) {
            return 0;
        }
        // Pairs with the setRelease of used.idx in VirtqueueDevice.publishUsed: the used elements
        // below idx are visible once idx is.
        int usedIdx = (short) VirtqUsedLayout.IDX.getAcquire(used, 0L) & Virtqueues.IDX_MASK;
        int pending = Virtqueues.idxDistance(lastUsedIdx, usedIdx);
        if (pending == 0) {
            return 0;
        }
        if (pending > inFlight) {
            markBroken(new VirtioFault(name, "used.idx", usedIdx, "moved " + pending + " past the last seen "
                    + lastUsedIdx + ", but only " + inFlight + " chains are in flight (queue size " + size + ")"));
            return 0;
        }
        int n = Math.min(pending, maxEntries);
        for (int k = 0; k < n; k++) {
            int slot = lastUsedIdx & mask;
            long base = VirtqUsedLayout.elemOffset(slot);
            long id = Integer.toUnsignedLong((int) VirtqUsedLayout.ELEM_ID.get(used, base));
            long length = Integer.toUnsignedLong((int) VirtqUsedLayout.ELEM_LEN.get(used, base));
            if (!checkUsedElem(slot, id, length)) {
                return k;
            }
            T token = detach((int) id);
            lastUsedIdx = (lastUsedIdx + 1) & Virtqueues.IDX_MASK;
            handler.onUsed(token, length);
        }
        if (eventIdx && callbacksEnabled) {
            // Ask for an interrupt at the next entry; enableCallbacks' fence and re-check close the race.
            VirtqAvailLayout.U16.set(avail, usedEventOffset, (short) lastUsedIdx);
        }
        return n;
    }

    /** Checks one used element against the shadow; marks the queue broken and returns false if bad. */
    private boolean checkUsedElem(int slot, long id, long length) {
        String reason = null;
        String member = "id";
        long value = id;
        if (id >= size) {
            reason = ">= queue size " + size;
        } else if (chainDescCount[(int) id] == 0) {
            reason = "not the head of a chain in flight";
        } else if (length > chainWritableBytes[(int) id]) {
            reason = "exceeds the " + chainWritableBytes[(int) id] + " device-writable bytes of chain " + id;
            member = "len";
            value = length;
        }
        if (reason != null) {
            markBroken(new VirtioFault(name, "used.ring[" + slot + "]." + member, value, reason));
            return false;
        }
        return true;
    }

    /** Unmaps a live chain, returns its descriptors to the free list, and returns its token. */
    private T detach(int head) {
        int count = chainDescCount[head];
        int last = head;
        if (chainIndirect[head]) {
            unmapIndirect(indirectTables[head]);
        } else {
            last = unmapDirect(head, count);
        }
        descNext[last] = freeHead;
        freeHead = head;
        numFree += count;
        chainDescCount[head] = 0;
        @SuppressWarnings("unchecked")
        T token = (T) chainToken[head];
        chainToken[head] = null;
        inFlight--;
        return token;
    }

    /** The DMA address of buffer {@code k}: mapped through the DMA ops, or as given if premapped. */
    private long map(ScatterGather sg, int k) {
        return sg.isPremapped(k) ? sg.gpa(k) : dma.mapSingle(sg.gpa(k), sg.lengthBytes(k), direction(sg.isWritable(k)));
    }

    /** Unmaps the first {@code count} descriptors of the private chain from {@code head}; returns the last. */
    private int unmapDirect(int head, int count) {
        int i = head;
        int last = head;
        for (int k = 0; k < count; k++) {
            if (!descPremapped[i]) {
                dma.unmapSingle(descDmaAddr[i], descLength[i], direction(descWritable[i]));
            }
            last = i;
            i = descNext[i];
        }
        return last;
    }

    private void unmapIndirect(IndirectTable table) {
        for (int k = 0; k < table.count; k++) {
            if (!table.premapped[k]) {
                dma.unmapSingle(table.dmaAddr[k], table.length[k], direction(table.writable[k]));
            }
        }
        table.count = 0;
    }

    private static DmaDirection direction(boolean writable) {
        return writable ? DmaDirection.FROM_DEVICE : DmaDirection.TO_DEVICE;
    }

    /**
     * Asks the device not to send used buffer notifications (§2.7.7): sets
     * {@code VIRTQ_AVAIL_F_NO_INTERRUPT}, or with EVENT_IDX moves {@code used_event} out of reach.
     * A hint: the device may still notify. Does nothing on a broken queue (its rings may already be
     * unmapped).
     */
    public void disableCallbacks() {
        if (!callbacksEnabled || fault != null) {
            return;
        }
        callbacksEnabled = false;
        if (eventIdx) {
            VirtqAvailLayout.U16.set(avail, usedEventOffset, (short) (lastUsedIdx + USED_EVENT_FAR));
        } else {
            availFlags |= VirtqAvailLayout.VIRTQ_AVAIL_F_NO_INTERRUPT;
            VirtqAvailLayout.FLAGS.set(avail, 0L, (short) availFlags);
        }
    }

    /**
     * Asks for used buffer notifications again, then re-checks the used ring: a completion that
     * arrived while they were off would otherwise never be signalled.
     *
     * @return true if nothing is pending (safe to wait for a notification); false if used entries
     *         arrived meanwhile (call {@link #reap} again), or if the queue is broken: the caller's
     *         next {@link #reap} returns 0 and it must then check {@link #isBroken()} rather than wait
     *         for a notification that will never come
     */
    public boolean enableCallbacks() {
        if (fault != null) {
            return false;
        }
        callbacksEnabled = true;
        if (eventIdx) {
            VirtqAvailLayout.U16.set(avail, usedEventOffset, (short) lastUsedIdx);
        } else {
            availFlags &= ~VirtqAvailLayout.VIRTQ_AVAIL_F_NO_INTERRUPT;
            VirtqAvailLayout.FLAGS.set(avail, 0L, (short) availFlags);
        }
        // The used_event (or flags) store must be visible before used idx is re-read; pairs with the
        // full fence in VirtqueueDevice.needsInterrupt between publishing used idx and reading used_event.
        VarHandle.fullFence();
        int usedIdx = (short) VirtqUsedLayout.IDX.getAcquire(used, 0L) & Virtqueues.IDX_MASK;
        return usedIdx == lastUsedIdx;
    }

    /**
     * After a device or queue reset (the device no longer reads or writes the rings): unmaps every
     * request still in flight, hands its token to {@code consumer}, and returns the queue to its
     * initial state (zeroed rings, indices 0, not broken) at the same ring addresses.
     *
     * @param consumer receives each token of a request the device never used
     * @return how many there were
     */
    public int detachUnused(Consumer<? super T> consumer) {
        int count = 0;
        for (int head = 0; head < size; head++) {
            if (chainDescCount[head] != 0) {
                consumer.accept(detach(head));
                count++;
            }
        }
        desc.fill((byte) 0);
        avail.fill((byte) 0);
        used.fill((byte) 0);
        initFreeList();
        availIdx = 0;
        numAdded = 0;
        lastUsedIdx = 0;
        inFlight = 0;
        availFlags = 0;
        callbacksEnabled = true;
        fault = null;
        return count;
    }

    /**
     * Test hook: starts the free-running counters at {@code idx} (wrap-around tests). Call before
     * any request, with the device side started at the same value.
     */
    void startIndicesAt(int idx) {
        availIdx = idx & Virtqueues.IDX_MASK;
        lastUsedIdx = availIdx;
        VirtqAvailLayout.IDX.set(avail, 0L, (short) availIdx);
        VirtqUsedLayout.IDX.set(used, 0L, (short) availIdx);
        VirtqAvailLayout.U16.set(avail, usedEventOffset, (short) availIdx);
    }

    /**
     * Marks the queue broken: it takes no new requests and reaps nothing until
     * {@link #detachUnused}. The first fault is kept.
     *
     * @param cause why
     */
    public void markBroken(VirtioFault cause) {
        Objects.requireNonNull(cause, "cause");
        if (fault == null) {
            fault = cause;
        }
    }

    /**
     * Whether the device broke the protocol (or {@link #markBroken} was called).
     *
     * @return whether the queue is broken
     */
    public boolean isBroken() {
        return fault != null;
    }

    /**
     * The fault that broke the queue.
     *
     * @return the fault, or null
     */
    public VirtioFault fault() {
        return fault;
    }

    /**
     * The queue's name.
     *
     * @return the name
     */
    public String name() {
        return name;
    }

    /**
     * The queue size.
     *
     * @return descriptors in the table
     */
    public int size() {
        return size;
    }

    /**
     * The DMA address of the descriptor table (QueueDesc).
     *
     * @return the address
     */
    public long descAddr() {
        return descBuffer.dmaAddr();
    }

    /**
     * The DMA address of the available ring (QueueDriver).
     *
     * @return the address
     */
    public long availAddr() {
        return availBuffer.dmaAddr();
    }

    /**
     * The DMA address of the used ring (QueueDevice).
     *
     * @return the address
     */
    public long usedAddr() {
        return usedBuffer.dmaAddr();
    }

    /**
     * Free descriptors in the table.
     *
     * @return the count
     */
    public int numFree() {
        return numFree;
    }

    /**
     * Requests added and not yet reaped.
     *
     * @return the count
     */
    public int inFlight() {
        return inFlight;
    }

    /**
     * Unmaps any request still in flight (dropping its token) and frees the rings and indirect
     * tables. Call after the device was reset. Idempotent.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        detachUnused(token -> { });
        closed = true;
        dma.freeCoherent(descBuffer);
        dma.freeCoherent(availBuffer);
        dma.freeCoherent(usedBuffer);
        if (indirectChunks != null) {
            for (CoherentBuffer chunk : indirectChunks) {
                if (chunk != null) {
                    dma.freeCoherent(chunk);
                }
            }
        }
    }

    @Override
    public String toString() {
        return "VirtqueueDriver(" + name + ", size " + size + ", in flight " + inFlight + (fault != null ? ", broken" : "") + ")";
    }
}
