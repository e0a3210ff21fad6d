package dev.airlock.stress;

import dev.airlock.virtio.DescriptorChain;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.I_Result;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

/**
 * Used element → used idx (VIRTIO 1.2 §2.7.14): the device writes into a chain's device-writable
 * buffer with plain stores, then {@link dev.airlock.virtio.VirtqueueDevice#pushUsed} writes the used
 * element (id, len) with plain stores and publishes the used idx with {@code setRelease}; the
 * driver's {@link dev.airlock.virtio.VirtqueueDriver#reap} reads the idx with {@code getAcquire},
 * then the element, and the driver then reads the buffer. Once the driver sees the new idx it must
 * see the element and every byte written before it.
 *
 * <p>Pre-state: requests 0 (buffer A, head 0) and 1 (buffer B, head 1), each one device-writable
 * buffer, added and popped. The device completes request 1 only, with a length ({@value #USED_LEN})
 * that differs from both 0 and the buffer length. So a stale used element (id 0, len 0) hands back
 * token 0 or a wrong length, and stale buffer bytes are zeros instead of the pattern.
 *
 * <p>r1: an {@link Observation} code of the driver.
 *
 * <p>Can it fail? Without the release/acquire pair the JIT (on any CPU) or the hardware (on Arm or
 * POWER) may make the idx visible before the element or the buffer bytes; the driver then reaps
 * token 0 with length 0 (r1 = 4), or sees zeros in the buffer (r1 = 2 or 3).
 */
@JCStressTest
@Outcome(id = "0", expect = ACCEPTABLE, desc = "The driver polled before the used idx was published: nothing reaped.")
@Outcome(id = "1", expect = ACCEPTABLE, desc = "Request 1 reaped with the right length, and every byte the device wrote is visible.")
@Outcome(id = "2", expect = FORBIDDEN, desc = "Reaped, but the buffer holds none of the device's bytes: stale data.")
@Outcome(id = "3", expect = FORBIDDEN, desc = "Reaped, but only some of the device's bytes are visible: torn publication.")
@Outcome(id = "4", expect = FORBIDDEN, desc = "Reaped a stale used element: wrong token, wrong length, or more than one entry.")
@Outcome(id = "5", expect = FORBIDDEN, desc = "The driver marked the queue broken: it read a stale used element or idx.")
@Outcome(expect = FORBIDDEN, desc = "Unknown code.")
@State
public class UsedPublication {
    /** The length the device reports; neither 0 nor the buffer length. */
    static final int USED_LEN = 40;
    private final QueuePair q = new QueuePair(QueuePair.EVENT_IDX);
    private final DescriptorChain chain1;
    private int reapedToken = -1;
    private long reapedLength = -1;

    /** Pre-state: requests 0 and 1 popped by the device. */
    public UsedPublication() {
        q.addIn(0, 0);
        q.addIn(1, 1);
        q.popExpected();
        chain1 = q.popExpected();
        if (chain1.head() != 1) {
            throw new IllegalStateException("expected head 1: " + chain1);
        }
    }

    /** Fills request 1's writable buffer, then completes it. */
    @Actor
    public void device() {
        QueuePair.fill(chain1.writable(0).segment());
        q.device.pushUsed(chain1, USED_LEN);
    }

    /**
     * Reaps once and checks what it got.
     *
     * @param r r1 = an {@link Observation} code
     */
    @Actor
    public void driver(I_Result r) {
        int n = q.driver.reap((token, lengthBytes) -> {
            reapedToken = token;
            reapedLength = lengthBytes;
        }, QueuePair.QUEUE_SIZE);
        if (q.driver.isBroken()) {
            r.r1 = Observation.FAULT;
        } else if (n == 0) {
            r.r1 = Observation.NOTHING;
        } else if (n != 1 || reapedToken != 1 || reapedLength != USED_LEN) {
            r.r1 = Observation.WRONG_ENTRY;
        } else {
            r.r1 = QueuePair.check(q.buffer(1));
        }
    }
}
