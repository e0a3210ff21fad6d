package dev.airlock.stress;

import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.GuestRange;
import dev.airlock.virtio.VirtioProtocolException;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

/**
 * Descriptor → avail ring entry → avail idx (VIRTIO 1.2 §2.7.13): the driver fills a buffer with
 * plain stores, then {@link dev.airlock.virtio.VirtqueueDriver#add} writes the descriptor and the
 * ring entry with plain stores and publishes the avail idx with {@code setRelease}; the device's
 * {@link dev.airlock.virtio.VirtqueueDevice#pop} reads the idx with {@code getAcquire}, then the
 * ring entry, the descriptor and (here) the buffer. Once the device sees the new idx it must see
 * everything written before it.
 *
 * <p>Pre-state: request 0 (buffer A, head 0) was added and popped, so it is in flight. The request
 * under test therefore takes head 1 at ring slot 1, and every stale read is visible: a stale ring
 * entry (0) names head 0, which is in flight, and {@code pop} faults; a stale descriptor (all zero)
 * is a zero-length buffer at address 0, so the chain has no readable range; a stale buffer holds
 * zeros instead of the pattern.
 *
 * <p>r1: 1 if {@code add} accepted the request. r2: an {@link Observation} code of the device.
 *
 * <p>Can it fail? Without the release/acquire pair the JIT may sink the descriptor and buffer
 * stores below the idx store (or hoist the device's loads above its idx load), and a weakly
 * ordered CPU (Arm, POWER) may reorder them in hardware; the device then walks a zero descriptor
 * or reads zeros: r2 = 2, 3, 4 or 5. On x86 (TSO) only the compiler reorders, so this test catches
 * a missing fence there only when the JIT actually moves the stores.
 */
@JCStressTest
@Outcome(id = "1, 0", expect = ACCEPTABLE, desc = "The device polled before the avail idx was published: nothing yet.")
@Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "The device took the chain, and its descriptor and every buffer byte are the new ones.")
@Outcome(id = "1, 2", expect = FORBIDDEN, desc = "Chain seen, but the buffer still holds the old bytes: buffer stores not published by the avail idx.")
@Outcome(id = "1, 3", expect = FORBIDDEN, desc = "Chain seen, but only part of the buffer is new: torn publication.")
@Outcome(id = "1, 4", expect = FORBIDDEN, desc = "Chain seen with a stale descriptor (wrong head, address, length or direction).")
@Outcome(id = "1, 5", expect = FORBIDDEN, desc = "The device faulted: it read a stale ring entry (head 0, in flight) or descriptor.")
@Outcome(expect = FORBIDDEN, desc = "add refused the request, or an unknown code.")
@State
public class AvailPublication {
    private static final int HEAD = 1;
    private final QueuePair q = new QueuePair(QueuePair.EVENT_IDX);

    /** Pre-state: request 0 in flight on head 0. */
    public AvailPublication() {
        q.addOut(0, 0);
        q.popExpected();
    }

    /**
     * Fills buffer B, then adds it as request 1.
     *
     * @param r r1 = whether {@code add} accepted it
     */
    @Actor
    public void driver(II_Result r) {
        QueuePair.fill(q.buffer(1));
        r.r1 = q.driver.add(q.sg.clear().out(QueuePair.bufferGpa(1), QueuePair.BUFFER_BYTES), 1) ? 1 : 0;
    }

    /**
     * Polls once and checks what it got.
     *
     * @param r r2 = an {@link Observation} code
     */
    @Actor
    public void device(II_Result r) {
        DescriptorChain chain;
        try {
            chain = q.device.pop();
        } catch (VirtioProtocolException e) {
            r.r2 = Observation.FAULT;
            return;
        }
        if (chain == null) {
            r.r2 = Observation.NOTHING;
            return;
        }
        if (chain.head() != HEAD || chain.readableCount() != 1 || chain.writableCount() != 0) {
            r.r2 = Observation.WRONG_ENTRY;
            return;
        }
        GuestRange range = chain.readable(0);
        if (range.gpa() != QueuePair.bufferGpa(1) || range.lengthBytes() != QueuePair.BUFFER_BYTES) {
            r.r2 = Observation.WRONG_ENTRY;
            return;
        }
        r.r2 = QueuePair.check(range.segment());
    }
}
