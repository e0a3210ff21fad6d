package dev.airlock.hypervisor;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * One direction of a message queue: a bounded lock-free MPMC ring of fixed-size slots (D. Vyukov's
 * bounded queue), with the two interrupt edges the hypervisor promises: the receiver's
 * {@link InterruptCause#MESSAGE_AVAILABLE} when it goes from empty to non-empty, and the sender's
 * {@link InterruptCause#QUEUE_NOT_FULL} when it goes from full to not full.
 *
 * <p>Positions are free-running counters. Slot {@code position % depth} carries a sequence:
 * {@code position} when free for the producer at that position, {@code position + 1} when it holds
 * that position's message, and {@code position + depth} once the consumer released it for the next
 * lap. Producers claim a position by CAS on {@code tail}, consumers by CAS on {@code head}; the
 * slot's sequence publishes the bytes and the length (volatile store, paired with the volatile load
 * on the other side).
 *
 * <p>No lost wake-up, by a Dekker argument on volatile accesses: a producer publishes its slot and
 * then reads {@code head}; a consumer that found the queue empty had just written {@code head}
 * (its last CAS) and then read that slot's sequence. Either the consumer saw the message, or the
 * producer sees {@code head} at or past its position and raises the interrupt. The not-full edge
 * is the mirror image: a consumer releases its slot and then reads {@code tail}; a producer that
 * found the slot occupied had read {@code tail} (as written by the last claim) before it. Both
 * edges are raised on "at or past" rather than "exactly at" so that several threads on one side
 * cannot make one lose its wake-up; the price is an occasional spurious interrupt.
 */
final class MessageQueue {
    private static final VarHandle HEAD;
    private static final VarHandle TAIL;

    static {
        try {
            MethodHandles.Lookup lookup = MethodHandles.lookup();
            HEAD = lookup.findVarHandle(MessageQueue.class, "head", long.class);
            TAIL = lookup.findVarHandle(MessageQueue.class, "tail", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final int depth;
    private final int slotBytes;
    /** The message bytes: slot {@code i} at {@code [i * slotBytes, (i + 1) * slotBytes)}. */
    private final MemorySegment slots;
    /** Plain; published by the slot's sequence. */
    private final int[] lengths;
    private final AtomicLongArray sequences;
    /** The receiver's view of the sender: where MESSAGE_AVAILABLE is raised. */
    private final Link receiverSide;
    /** The sender's view of the receiver: where QUEUE_NOT_FULL is raised. */
    private final Link senderSide;

    /** Next position to consume; written by CAS only. On its own cache line, away from {@code tail}. */
    @SuppressWarnings("unused")
    private long p01, p02, p03, p04, p05, p06, p07;
    private volatile long head;
    @SuppressWarnings("unused")
    private long p11, p12, p13, p14, p15, p16, p17;
    /** Next position to produce; written by CAS only. */
    private volatile long tail;
    @SuppressWarnings("unused")
    private long p21, p22, p23, p24, p25, p26, p27;

    MessageQueue(int depth, int slotBytes, Link senderSide, Link receiverSide) {
        if (depth < 2 || depth > 65_536) {
            throw new IllegalArgumentException("a message queue depth is in [2, 65536]: " + depth);
        }
        this.depth = depth;
        this.slotBytes = slotBytes;
        this.slots = MemorySegment.ofArray(new byte[Math.multiplyExact(depth, slotBytes)]);
        this.lengths = new int[depth];
        this.sequences = new AtomicLongArray(depth);
        for (int i = 0; i < depth; i++) {
            sequences.setPlain(i, i);
        }
        this.senderSide = senderSide;
        this.receiverSide = receiverSide;
        // The final fields and the plain sequence stores are published with this object through the
        // volatile Link field that holds it.
    }

    /**
     * Appends a message unless the queue is full.
     *
     * @param message at most {@code slotBytes} bytes (checked by the caller)
     * @return OK or FULL
     */
    SendResult offer(MemorySegment message) {
        int length = (int) message.byteSize();
        long position = (long) TAIL.getVolatile(this);
        int index;
        while (true) {
            index = (int) (position % depth);
            long lag = sequences.get(index) - position;
            if (lag == 0) {
                if (TAIL.compareAndSet(this, position, position + 1)) {
                    break;
                }
                position = (long) TAIL.getVolatile(this);
            } else if (lag < 0) {
                // The slot still holds the message from position - depth: full. The consumer that
                // frees it reads tail afterwards and raises QUEUE_NOT_FULL (see the class comment).
                return SendResult.FULL;
            } else {
                position = (long) TAIL.getVolatile(this); // another producer claimed it; reload
            }
        }
        MemorySegment.copy(message, 0, slots, (long) index * slotBytes, length);
        lengths[index] = length;
        // Publishes the bytes and the length; pairs with the volatile load in poll(). Volatile, not
        // release: it must not be reordered with the head load below (store-load, Dekker).
        sequences.set(index, position + 1);
        if ((long) HEAD.getVolatile(this) >= position) {
            receiverSide.raise(InterruptCause.MESSAGE_AVAILABLE);
        }
        return SendResult.OK;
    }

    /**
     * Takes the oldest message.
     *
     * @param into receives the bytes at offset 0; at least {@code slotBytes} long (checked by the caller)
     * @return the length, or {@link VmContext#EMPTY}
     */
    int poll(MemorySegment into) {
        long position = (long) HEAD.getVolatile(this);
        int index;
        while (true) {
            index = (int) (position % depth);
            long lag = sequences.get(index) - (position + 1);
            if (lag == 0) {
                if (HEAD.compareAndSet(this, position, position + 1)) {
                    break;
                }
                position = (long) HEAD.getVolatile(this);
            } else if (lag < 0) {
                return VmContext.EMPTY; // not yet published; its producer will see head and raise
            } else {
                position = (long) HEAD.getVolatile(this);
            }
        }
        int length = lengths[index];
        MemorySegment.copy(slots, (long) index * slotBytes, into, 0, length);
        release(index, position);
        return length;
    }

    /**
     * Takes the oldest message into a new array.
     *
     * @return the bytes, or {@code null} if the queue is empty
     */
    byte[] poll() {
        long position = (long) HEAD.getVolatile(this);
        int index;
        while (true) {
            index = (int) (position % depth);
            long lag = sequences.get(index) - (position + 1);
            if (lag == 0) {
                if (HEAD.compareAndSet(this, position, position + 1)) {
                    break;
                }
                position = (long) HEAD.getVolatile(this);
            } else if (lag < 0) {
                return null;
            } else {
                position = (long) HEAD.getVolatile(this);
            }
        }
        byte[] message = new byte[lengths[index]];
        MemorySegment.copy(slots, (long) index * slotBytes, MemorySegment.ofArray(message), 0, message.length);
        release(index, position);
        return message;
    }

    private void release(int index, long position) {
        // Hands the slot to the producer of position + depth; pairs with the volatile load in
        // offer(). Volatile for the same store-load reason as in offer().
        sequences.set(index, position + depth);
        if ((long) TAIL.getVolatile(this) - position >= depth) {
            senderSide.raise(InterruptCause.QUEUE_NOT_FULL);
        }
    }
}
