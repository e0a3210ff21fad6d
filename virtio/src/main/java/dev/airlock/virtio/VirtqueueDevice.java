package dev.airlock.virtio;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.UnmappedAddressException;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.VarHandle;
import java.util.Objects;

import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_INDIRECT;
import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_NEXT;
import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_VALID_MASK;
import static dev.airlock.virtio.VirtqDescLayout.VIRTQ_DESC_F_WRITE;

/**
 * The device (backend) side of one split virtqueue (VIRTIO 1.2 §2.7), over the device's view of
 * the driver's DMA addresses: a {@link GuestAddressSpace} holding only the regions granted to it.
 *
 * <p><b>Untrusted driver.</b> Every field the driver wrote is read once and checked before use: the
 * avail idx may move at most the queue size ahead of {@link #nextAvail()}; a head index must be
 * below the queue size and not already in flight; a chain is walked without recursion, at most the
 * queue size descriptors per table, so loops end it; flags may hold only NEXT, WRITE and INDIRECT;
 * indirect tables must be negotiated, not nested, not combined with NEXT, a non-zero multiple of 16
 * bytes holding at most queue-size descriptors, and 8-byte aligned; device-readable descriptors may
 * not follow device-writable ones; a chain holds at most queue-size buffers totalling under 2^32
 * bytes; every buffer must lie inside one granted region. The whole chain is checked before
 * anything changes. A violation records a {@link VirtioFault}, marks the queue broken and throws
 * {@link VirtioProtocolException}; the transport then sets DEVICE_NEEDS_RESET.
 *
 * <p><b>Zero-length descriptors</b> are accepted (the spec does not forbid them): they count toward
 * the chain length and the readable-before-writable rule, but yield no {@link GuestRange} and their
 * address is not translated.
 *
 * <p><b>Batching.</b> {@link #addUsed} writes a used element; {@link #publishUsed} makes all
 * written elements visible with one release store; {@link #needsInterrupt} then decides whether to
 * notify the driver.
 *
 * <p><b>Threading.</b> One device thread per queue calls {@link #pop}, {@link #addUsed},
 * {@link #publishUsed}, {@link #pushUsed}, {@link #needsInterrupt} and the notification methods; a
 * backend that completes requests on other threads hands them back to that thread (or serializes
 * externally). No locks are taken. {@link #isBroken()} and {@link #fault()} may be read anywhere.
 */
public final class VirtqueueDevice {
    /** How far ahead of {@code nextAvail} {@link #disableNotifications()} parks {@code avail_event}. */
    private static final int AVAIL_EVENT_FAR = 0x8000;

    private final String name;
    private final GuestAddressSpace space;
    private final int size;
    private final int mask;
    private final boolean indirectNegotiated;
    private final boolean eventIdx;
    private final MemorySegment desc;
    private final MemorySegment avail;
    private final MemorySegment used;
    private final long usedEventOffset;
    private final long availEventOffset;
    private final boolean[] inFlight;
    private final DescriptorChain[] chains;

    private int nextAvail;
    private int availIdxShadow;
    private int nextUsed;
    private int publishedUsed;
    private int signalledUsed;
    private int usedFlags;
    private int walkHead;
    private volatile VirtioFault fault;
    private boolean started;
    private InflightTracker tracker;
    private int[] resubmits;
    private boolean[] resubmitPending;
    private int resubmitFirst;
    private int resubmitCount;

    /**
     * Records which chains are in flight in memory that outlives the device process (vhost-user's
     * inflight I/O tracking): told of every chain taken from the available ring, every used element
     * written, and every publication of the used idx. Called on the queue's device thread.
     */
    public interface InflightTracker {
        /**
         * A chain was taken from the available ring (not a resubmitted one).
         *
         * @param head its head index
         */
        void popped(int head);

        /**
         * A used element was written for a chain; not yet visible to the driver.
         *
         * @param head its head index
         */
        void used(int head);

        /**
         * The used idx was published: every chain passed to {@link #used} since the last call is
         * now visible to the driver.
         *
         * @param usedIdx the used idx now in memory
         */
        void published(int usedIdx);
    }

    /** One descriptor as read from guest memory, each field exactly once. */
    private record Desc(long addr, long length, int flags, int next) {
        static Desc read(MemorySegment table, int index) {
            long base = VirtqDescLayout.descOffset(index);
            return new Desc((long) VirtqDescLayout.ADDR.get(table, base),
                    Integer.toUnsignedLong((int) VirtqDescLayout.LEN.get(table, base)),
                    (short) VirtqDescLayout.FLAGS.get(table, base) & 0xffff,
                    (short) VirtqDescLayout.NEXT.get(table, base) & 0xffff);
        }
    }

    /**
     * Attaches to a queue the driver set up.
     *
     * @param name               for fault records, for example {@code "vm2/blk0.requestq"}
     * @param space              the device's view of the driver's DMA addresses
     * @param queueSize          the size the driver chose
     * @param descAddr           the descriptor table (QueueDesc), 16-byte aligned
     * @param availAddr          the available ring (QueueDriver), 2-byte aligned
     * @param usedAddr           the used ring (QueueDevice), 4-byte aligned
     * @param negotiatedFeatures the features in force (INDIRECT_DESC and EVENT_IDX matter here)
     * @throws VirtioProtocolException if the size is not a power of two from 1 to 32768, or a ring is
     *                                 misaligned or not wholly inside one granted region
     */
    public VirtqueueDevice(String name, GuestAddressSpace space, int queueSize, long descAddr, long availAddr,
                           long usedAddr, long negotiatedFeatures) {
        this.name = Objects.requireNonNull(name, "name");
        this.space = Objects.requireNonNull(space, "space");
        if (!Virtqueues.isValidQueueSize(queueSize)) {
            throw new VirtioProtocolException(new VirtioFault(name, "queue.size", Integer.toUnsignedLong(queueSize),
                    "not a power of two from 1 to " + Virtqueues.MAX_QUEUE_SIZE));
        }
        this.size = queueSize;
        this.mask = queueSize - 1;
        this.indirectNegotiated = VirtioFeatures.has(negotiatedFeatures, VirtioFeatures.VIRTIO_F_INDIRECT_DESC);
        this.eventIdx = VirtioFeatures.has(negotiatedFeatures, VirtioFeatures.VIRTIO_F_EVENT_IDX);
        this.desc = ring("queue.desc", descAddr, VirtqDescLayout.tableLengthBytes(queueSize), VirtqDescLayout.TABLE_ALIGNMENT);
        this.avail = ring("queue.avail", availAddr, VirtqAvailLayout.lengthBytes(queueSize), VirtqAvailLayout.ALIGNMENT);
        this.used = ring("queue.used", usedAddr, VirtqUsedLayout.lengthBytes(queueSize), VirtqUsedLayout.ALIGNMENT);
        this.usedEventOffset = VirtqAvailLayout.usedEventOffset(queueSize);
        this.availEventOffset = VirtqUsedLayout.availEventOffset(queueSize);
        this.inFlight = new boolean[queueSize];
        this.chains = new DescriptorChain[queueSize];
    }

    private MemorySegment ring(String field, long gpa, long lengthBytes, int alignment) {
        if ((gpa & (alignment - 1)) != 0) {
            throw new VirtioProtocolException(new VirtioFault(name, field, gpa, "not " + alignment + "-byte aligned (§2.7.2)"));
        }
        MemorySegment segment;
        try {
            segment = space.translate(gpa, lengthBytes);
        } catch (UnmappedAddressException e) {
            throw new VirtioProtocolException(new VirtioFault(name, field, gpa,
                    "ring of " + lengthBytes + " bytes not inside one granted region: " + e.getMessage()));
        }
        if ((segment.address() & (alignment - 1)) != 0) {
            throw new VirtioProtocolException(new VirtioFault(name, field, gpa,
                    "maps to a host address that is not " + alignment + "-byte aligned"));
        }
        return segment;
    }

    /**
     * Takes the next available chain, validated in full (§2.7.13 from the device's side).
     *
     * @return the chain, owned by the caller until {@link #addUsed}; null if the driver has made
     *         nothing new available
     * @throws VirtioProtocolException if the driver broke the protocol (now or earlier); the queue
     *                                 is broken and {@link #nextAvail()} did not move
     */
    public DescriptorChain pop() {
        VirtioFault broken = fault;
        if (broken != null) {
            throw new VirtioProtocolException(broken);
        }
        started = true;
        if (resubmitCount > 0) {
            return popResubmitted();
        }
        if (nextAvail == availIdxShadow && !refreshAvailIdx()) {
            return null;
        }
        int slot = nextAvail & mask;
        int head = (short) VirtqAvailLayout.U16.get(avail, VirtqAvailLayout.ringEntryOffset(slot)) & 0xffff;
        if (head >= size) {
            throw violation("avail.ring[" + slot + "]", head, ">= queue size " + size);
        }
        if (inFlight[head]) {
            throw violation("avail.ring[" + slot + "]", head, "head is already in flight (made available twice)");
        }
        DescriptorChain chain = chains[head];
        if (chain == null) {
            chain = new DescriptorChain(this, head);
            chains[head] = chain;
        }
        walk(head, chain);
        inFlight[head] = true;
        nextAvail = (nextAvail + 1) & Virtqueues.IDX_MASK;
        if (tracker != null) {
            tracker.popped(head);
        }
        return chain;
    }

    /** Re-walks the oldest chain handed to {@link #resubmit}, with every check of {@link #pop}. */
    private DescriptorChain popResubmitted() {
        int head = resubmits[resubmitFirst];
        resubmitFirst = (resubmitFirst + 1) & mask;
        resubmitCount--;
        resubmitPending[head] = false;
        if (inFlight[head]) {
            throw violation("inflight.desc[" + head + "]", head, "resubmitted head is already in flight");
        }
        DescriptorChain chain = chains[head];
        if (chain == null) {
            chain = new DescriptorChain(this, head);
            chains[head] = chain;
        }
        walk(head, chain);
        inFlight[head] = true;
        return chain;
    }

    /** Reloads the avail idx; returns whether anything is pending. */
    private boolean refreshAvailIdx() {
        // Pairs with the setRelease of avail.idx in VirtqueueDriver.add: the ring entries and
        // descriptors below idx are visible once idx is (§2.7.13.3).
        int idx = (short) VirtqAvailLayout.IDX.getAcquire(avail, 0L) & Virtqueues.IDX_MASK;
        int pending = Virtqueues.idxDistance(nextAvail, idx);
        if (pending > size) {
            throw violation("avail.idx", idx, "moved " + pending + " ahead of nextAvail " + nextAvail
                    + ", more than the queue size " + size);
        }
        availIdxShadow = idx;
        return pending != 0;
    }

    /** Walks and checks the whole chain at {@code head}, filling {@code chain}; no recursion. */
    private void walk(int head, DescriptorChain chain) {
        chain.reset();
        walkHead = head;
        MemorySegment table = desc;
        int tableSize = size;
        int index = head;
        int visited = 0;
        int buffers = 0;
        boolean inIndirect = false;
        boolean seenWritable = false;
        long total = 0;
        while (true) {
            if (visited == tableSize) {
                throw chainViolation(inIndirect, index, "next", index, "chain visits more than " + tableSize
                        + " descriptors of its table: a loop");
            }
            visited++;
            Desc d = Desc.read(table, index);
            if ((d.flags() & ~VIRTQ_DESC_F_VALID_MASK) != 0) {
                throw chainViolation(inIndirect, index, "flags", d.flags(), "reserved flag bits set");
            }
            if ((d.flags() & VIRTQ_DESC_F_INDIRECT) != 0) {
                table = indirectTable(inIndirect, index, d);
                tableSize = (int) (d.length() / VirtqDescLayout.DESC_LENGTH);
                index = 0;
                visited = 0;
                inIndirect = true;
                continue;
            }
            if (++buffers > size) {
                throw chainViolation(inIndirect, index, "next", index, "chain holds more than the queue size " + size + " buffers");
            }
            boolean writable = (d.flags() & VIRTQ_DESC_F_WRITE) != 0;
            if (seenWritable && !writable) {
                throw chainViolation(inIndirect, index, "flags", d.flags(), "device-readable descriptor after a device-writable one (§2.7.4)");
            }
            seenWritable |= writable;
            total = Math.addExact(total, d.length());
            if (total > ScatterGather.MAX_TOTAL_BYTES) {
                throw chainViolation(inIndirect, index, "len", d.length(), "chain total " + total + " bytes reaches 2^32 (§2.7.5)");
            }
            if (d.length() != 0) {
                GuestRange range = new GuestRange(d.addr(), d.length(), translate(inIndirect, index, d.addr(), d.length()));
                if (writable) {
                    chain.addWritable(range);
                } else {
                    chain.addReadable(range);
                }
            }
            if ((d.flags() & VIRTQ_DESC_F_NEXT) == 0) {
                break;
            }
            if (d.next() >= tableSize) {
                throw chainViolation(inIndirect, index, "next", d.next(), ">= table size " + tableSize);
            }
            index = d.next();
        }
        chain.setDescriptorCount(buffers);
    }

    /** Checks an indirect descriptor (§2.7.5.3) and translates its table. */
    private MemorySegment indirectTable(boolean inIndirect, int index, Desc d) {
        if (!indirectNegotiated) {
            throw chainViolation(inIndirect, index, "flags", d.flags(), "VIRTQ_DESC_F_INDIRECT without VIRTIO_F_INDIRECT_DESC");
        }
        if (inIndirect) {
            throw chainViolation(true, index, "flags", d.flags(), "nested indirect table (only one level is allowed)");
        }
        if ((d.flags() & VIRTQ_DESC_F_NEXT) != 0) {
            throw chainViolation(false, index, "flags", d.flags(), "VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT");
        }
        if (d.length() == 0 || d.length() % VirtqDescLayout.DESC_LENGTH != 0) {
            throw chainViolation(false, index, "len", d.length(), "indirect table length is not a non-zero multiple of 16");
        }
        if (d.length() / VirtqDescLayout.DESC_LENGTH > size) {
            throw chainViolation(false, index, "len", d.length(), "indirect table holds more than the queue size " + size + " descriptors");
        }
        if ((d.addr() & (VirtqDescLayout.INDIRECT_TABLE_ALIGNMENT - 1)) != 0) {
            throw chainViolation(false, index, "addr", d.addr(), "indirect table is not 8-byte aligned");
        }
        MemorySegment table = translate(false, index, d.addr(), d.length());
        if ((table.address() & (VirtqDescLayout.INDIRECT_TABLE_ALIGNMENT - 1)) != 0) {
            throw chainViolation(false, index, "addr", d.addr(), "indirect table maps to a host address that is not 8-byte aligned");
        }
        return table;
    }

    private MemorySegment translate(boolean inIndirect, int index, long gpa, long lengthBytes) {
        try {
            return space.translate(gpa, lengthBytes);
        } catch (UnmappedAddressException e) {
            throw chainViolation(inIndirect, index, "addr", gpa, "buffer of " + lengthBytes
                    + " bytes not inside one granted region: " + e.getMessage());
        }
    }

    /** A violation in the chain being walked: names the descriptor field and, in the reason, the head. */
    private VirtioProtocolException chainViolation(boolean inIndirect, int index, String member, long value, String reason) {
        return violation((inIndirect ? "indirect[" : "desc[") + index + "]." + member, value, reason + " (chain head " + walkHead + ")");
    }

    private VirtioProtocolException violation(String field, long value, String reason) {
        VirtioFault f = new VirtioFault(name, field, value, reason);
        markBroken(f);
        return new VirtioProtocolException(f);
    }

    /**
     * Writes the used element for a chain (§2.7.8); the driver sees it after {@link #publishUsed}.
     * Ownership of the chain returns to the queue. On a broken queue nothing is written.
     *
     * @param chain       a chain from {@link #pop()} on this queue, not yet used
     * @param lengthBytes bytes written into the chain's device-writable buffers
     * @throws IllegalStateException    if the chain is not in flight on this queue
     * @throws IllegalArgumentException if the length is negative or above {@link DescriptorChain#writableBytes()}
     */
    public void addUsed(DescriptorChain chain, long lengthBytes) {
        int head = chain.head();
        if (chain.queue() != this || !inFlight[head]) {
            throw new IllegalStateException("chain " + head + " is not in flight on queue '" + name + "'");
        }
        if (lengthBytes < 0 || lengthBytes > chain.writableBytes()) {
            throw new IllegalArgumentException("used length " + lengthBytes + " outside 0.." + chain.writableBytes());
        }
        inFlight[head] = false;
        if (fault != null) {
            return;
        }
        long base = VirtqUsedLayout.elemOffset(nextUsed & mask);
        VirtqUsedLayout.ELEM_ID.set(used, base, head);
        VirtqUsedLayout.ELEM_LEN.set(used, base, (int) lengthBytes);
        nextUsed = (nextUsed + 1) & Virtqueues.IDX_MASK;
        if (tracker != null) {
            tracker.used(head);
        }
    }

    /** Makes every used element written by {@link #addUsed} visible to the driver (§2.7.14). */
    public void publishUsed() {
        if (fault != null || publishedUsed == nextUsed) {
            return;
        }
        // Publishes the used elements written by addUsed; pairs with the getAcquire of used.idx in
        // VirtqueueDriver.reap.
        VirtqUsedLayout.IDX.setRelease(used, 0L, (short) nextUsed);
        publishedUsed = nextUsed;
        if (tracker != null) {
            tracker.published(nextUsed);
        }
    }

    /**
     * {@link #addUsed} then {@link #publishUsed}.
     *
     * @param chain       a chain from {@link #pop()}, not yet used
     * @param lengthBytes bytes written into its device-writable buffers
     */
    public void pushUsed(DescriptorChain chain, long lengthBytes) {
        addUsed(chain, lengthBytes);
        publishUsed();
    }

    /**
     * Decides whether the driver must be sent a used buffer notification for what was published
     * since the last call (§2.7.7): with EVENT_IDX, whether the used idx passed {@code used_event};
     * otherwise, whether the driver left {@code VIRTQ_AVAIL_F_NO_INTERRUPT} clear. Reserved flag
     * bits are ignored, and flags are ignored entirely under EVENT_IDX.
     *
     * @return whether to notify
     */
    public boolean needsInterrupt() {
        if (fault != null) {
            return false;
        }
        // The used idx store must be visible before used_event or avail.flags is read; pairs with
        // the full fence in VirtqueueDriver.enableCallbacks between its used_event store and used idx re-read.
        VarHandle.fullFence();
        int oldIdx = signalledUsed;
        int newIdx = publishedUsed;
        signalledUsed = newIdx;
        if (newIdx == oldIdx) {
            return false;
        }
        if (eventIdx) {
            int usedEvent = (short) VirtqAvailLayout.U16.get(avail, usedEventOffset) & Virtqueues.IDX_MASK;
            return Virtqueues.needEvent(usedEvent, newIdx, oldIdx);
        }
        int availFlags = (short) VirtqAvailLayout.FLAGS.get(avail, 0L);
        return (availFlags & VirtqAvailLayout.VIRTQ_AVAIL_F_NO_INTERRUPT) == 0;
    }

    /**
     * Asks the driver not to send available buffer notifications (§2.7.10): sets
     * {@code VIRTQ_USED_F_NO_NOTIFY}, or with EVENT_IDX parks {@code avail_event} half the index space
     * ahead of {@code nextAvail} (as the driver side parks {@code used_event}), so the driver's
     * avail idx cannot cross it before {@link #enableNotifications()} moves it back. A value just
     * behind {@code nextAvail} would not do: the device often takes part of a batch before the driver
     * decides whether to kick for it. A hint: the driver may still notify.
     */
    public void disableNotifications() {
        if (eventIdx) {
            // Plain store like enableNotifications' avail_event store; the driver reads it after its
            // full fence in VirtqueueDriver.kickPrepare.
            VirtqUsedLayout.U16.set(used, availEventOffset, (short) (nextAvail + AVAIL_EVENT_FAR));
        } else {
            usedFlags |= VirtqUsedLayout.VIRTQ_USED_F_NO_NOTIFY;
            VirtqUsedLayout.FLAGS.set(used, 0L, (short) usedFlags);
        }
    }

    /**
     * Asks for available buffer notifications again, then re-checks the avail idx: work made
     * available while they were off would otherwise never be signalled.
     *
     * @return true if nothing is pending (safe to wait for a notification); false if the driver made
     *         more chains available meanwhile (call {@link #pop()} again)
     */
    public boolean enableNotifications() {
        if (eventIdx) {
            VirtqUsedLayout.U16.set(used, availEventOffset, (short) nextAvail);
        } else {
            usedFlags &= ~VirtqUsedLayout.VIRTQ_USED_F_NO_NOTIFY;
            VirtqUsedLayout.FLAGS.set(used, 0L, (short) usedFlags);
        }
        // The avail_event (or flags) store must be visible before avail idx is re-read; pairs with the
        // full fence in VirtqueueDriver.kickPrepare between publishing avail idx and reading avail_event.
        VarHandle.fullFence();
        int idx = (short) VirtqAvailLayout.IDX.getAcquire(avail, 0L) & Virtqueues.IDX_MASK;
        return idx == nextAvail;
    }

    /**
     * Test hook: starts the free-running counters at {@code idx} (wrap-around tests), matching
     * {@code VirtqueueDriver.startIndicesAt}.
     */
    void startIndicesAt(int idx) {
        nextAvail = idx & Virtqueues.IDX_MASK;
        availIdxShadow = nextAvail;
        nextUsed = nextAvail;
        publishedUsed = nextAvail;
        signalledUsed = nextAvail;
        VirtqUsedLayout.IDX.set(used, 0L, (short) nextAvail);
        VirtqUsedLayout.U16.set(used, availEventOffset, (short) nextAvail);
    }

    /**
     * Reads the used idx as it is in memory now (vhost-user adopts it when a ring starts).
     *
     * @return the used idx, modulo 2^16
     */
    public int readUsedIdx() {
        return (short) VirtqUsedLayout.IDX.getAcquire(used, 0L) & Virtqueues.IDX_MASK;
    }

    /**
     * Starts the queue at a given avail position (vhost-user's {@code SET_VRING_BASE}) and adopts
     * the used idx already in memory: unlike a fresh queue, nothing is written to the rings. The
     * chains between the used idx and {@code nextAvailIdx} count as taken by an earlier device
     * (completed out of order, or handed back through {@link #resubmit}).
     *
     * @param nextAvailIdx the avail idx value of the next chain to take, 0 to 65535
     * @throws IllegalArgumentException  if the value is out of range
     * @throws IllegalStateException     if a chain was already taken from this queue
     * @throws VirtioProtocolException   if the used idx in memory is more than the queue size behind
     *                                   {@code nextAvailIdx}; the queue is then broken
     */
    public void startAt(int nextAvailIdx) {
        startAt(nextAvailIdx, readUsedIdx());
    }

    /**
     * As {@link #startAt(int)}, with the used idx the caller already read from the ring (to recover
     * inflight chains against it, say): the used ring lives in guest memory, so two readings could
     * differ, and the recovery and the queue must agree on one.
     *
     * @param nextAvailIdx the avail idx value of the next chain to take, 0 to 65535
     * @param usedIdx      the used idx read from the ring, 0 to 65535
     * @throws IllegalArgumentException  if a value is out of range
     * @throws IllegalStateException     if a chain was already taken from this queue
     * @throws VirtioProtocolException   if {@code usedIdx} is more than the queue size behind
     *                                   {@code nextAvailIdx}; the queue is then broken
     */
    public void startAt(int nextAvailIdx, int usedIdx) {
        if (nextAvailIdx < 0 || nextAvailIdx > Virtqueues.IDX_MASK || usedIdx < 0 || usedIdx > Virtqueues.IDX_MASK) {
            throw new IllegalArgumentException("avail or used position outside 0..65535: " + nextAvailIdx + ", " + usedIdx);
        }
        if (started) {
            throw new IllegalStateException("queue '" + name + "' already took chains; start it before the first pop");
        }
        int taken = Virtqueues.idxDistance(usedIdx, nextAvailIdx);
        if (taken > size) {
            throw violation("used.idx", usedIdx, "is " + taken + " behind the starting avail position " + nextAvailIdx
                    + ", more than the queue size " + size);
        }
        nextAvail = nextAvailIdx;
        availIdxShadow = nextAvailIdx;
        nextUsed = usedIdx;
        publishedUsed = usedIdx;
        signalledUsed = usedIdx;
    }

    /**
     * Hands a chain that an earlier device took but never completed back to the queue: the next
     * {@link #pop} calls return such chains first, in the order given, walked and checked again
     * like any other (vhost-user inflight resubmission). {@link #nextAvail()} does not move for them.
     *
     * @param head the head index the earlier device recorded
     * @throws VirtioProtocolException if the head is not below the queue size or is already pending
     *                                 or in flight; the queue is then broken
     */
    public void resubmit(int head) {
        if (head < 0 || head >= size) {
            throw violation("inflight.head", Integer.toUnsignedLong(head), ">= queue size " + size);
        }
        if (resubmits == null) {
            resubmits = new int[size];
            resubmitPending = new boolean[size];
        }
        if (inFlight[head]) {
            throw violation("inflight.head", head, "head is already in flight");
        }
        if (resubmitPending[head]) {
            throw violation("inflight.head", head, "head is resubmitted twice");
        }
        resubmitPending[head] = true;
        resubmits[(resubmitFirst + resubmitCount) & mask] = head;
        resubmitCount++;
    }

    /**
     * How many chains handed to {@link #resubmit} are still to be returned by {@link #pop}.
     *
     * @return the count
     */
    public int pendingResubmits() {
        return resubmitCount;
    }

    /**
     * Installs (or, with null, removes) the tracker told of every chain taken and completed.
     *
     * @param inflightTracker the tracker, or null
     */
    public void setInflightTracker(InflightTracker inflightTracker) {
        this.tracker = inflightTracker;
    }

    /**
     * Marks the queue broken, as a protocol violation does; the first fault is kept.
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
     * Whether the driver broke the protocol on this queue.
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
     * The avail idx value of the next chain to take (vhost-user's vring base).
     *
     * @return a counter modulo 2^16
     */
    public int nextAvail() {
        return nextAvail;
    }

    /**
     * The used idx value the next used element gets.
     *
     * @return a counter modulo 2^16
     */
    public int nextUsed() {
        return nextUsed;
    }

    @Override
    public String toString() {
        return "VirtqueueDevice(" + name + ", size " + size + ", nextAvail " + nextAvail + (fault != null ? ", broken" : "") + ")";
    }
}
