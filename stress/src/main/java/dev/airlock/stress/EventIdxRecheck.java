package dev.airlock.stress;

import dev.airlock.virtio.DescriptorChain;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

/**
 * The re-check after re-enabling notifications (VIRTIO 1.2 §2.7.7, §2.7.10), on both rings. It is
 * a store-buffering (Dekker) pattern: the notifier publishes an index and then reads the sleeper's
 * event field (or flags); the sleeper writes that event field (or clears its flag) and then
 * re-reads the index. The full fence on each side between its store and its load
 * ({@code kickPrepare} against {@code enableNotifications}, {@code needsInterrupt} against
 * {@code enableCallbacks}) makes at least one of them see the other's store: either the notifier
 * notifies, or the sleeper sees the work and does not sleep.
 *
 * <p>Each test runs the protocol on two independent queues in the same state, one with
 * {@code VIRTIO_F_EVENT_IDX} ({@code avail_event} / {@code used_event}) and one with flag-based
 * suppression ({@code VIRTQ_USED_F_NO_NOTIFY} / {@code VIRTQ_AVAIL_F_NO_INTERRUPT}): each actor
 * does its side on the event-index queue first, then on the flags queue. This halves the number of
 * jcstress tests, and so of forked JVMs, which dominate the suite's running time, at little loss:
 * the two queues share no memory, so each pair of racing operations is its own litmus test (only
 * the flags pair starts a little later than the event-index pair on both sides).
 *
 * <p>Each actor stores its answers in the state; an arbiter combines them. r1 (event-index queue)
 * and r2 (flags queue) each encode one queue's outcome as {@code (notified ? 2 : 0) + (idle ? 1 : 0)}:
 * <ul>
 *   <li>3: notification sent, and the sleeper found nothing and sleeps until it arrives;</li>
 *   <li>2: notification sent, and the sleeper's re-check saw the work (the notification is redundant);</li>
 *   <li>0: no notification (the notifier read the old event field or flag), but the sleeper's
 *       re-check saw the work;</li>
 *   <li>1: FORBIDDEN, the lost wakeup: no notification, and the sleeper sleeps with work pending.</li>
 * </ul>
 *
 * <p>Can it fail? Without the fences this is exactly the store-buffering litmus test: each store
 * may wait in its core's store buffer while the following load reads the old value, on x86 as on
 * Arm, so outcome 1 is reachable. {@link RecheckWithoutFence} is the same shape without the
 * fences, and jcstress observes its lost wakeup on x86.
 */
public final class EventIdxRecheck {
    private EventIdxRecheck() {
    }

    /**
     * One queue's outcome.
     *
     * @param notified whether the notifier decided to notify
     * @param idle     whether the sleeper's re-check found nothing pending
     * @return {@code (notified ? 2 : 0) + (idle ? 1 : 0)}
     */
    static int code(boolean notified, boolean idle) {
        return (notified ? 2 : 0) + (idle ? 1 : 0);
    }

    /**
     * Avail side. Driver: add + {@code kickPrepare} (notified = kick). Device:
     * {@code enableNotifications} (idle = nothing pending, it would sleep).
     *
     * <p>Pre-state, event-index queue: one request went round (added, kicked, popped, used,
     * reaped) and the device never advanced {@code avail_event} (it stays 0: notifications off, in
     * event-index style), so the device has drained and is about to sleep. Flags queue: the device
     * set {@code VIRTQ_USED_F_NO_NOTIFY} and has nothing pending.
     */
    @JCStressTest
    @Outcome(id = "3, 3", expect = ACCEPTABLE, desc = "Both queues: kick sent; the device sleeps until it arrives.")
    @Outcome(id = "3, 2", expect = ACCEPTABLE, desc = "Event idx: kick, device sleeps. Flags: kick, and the device's re-check saw the work.")
    @Outcome(id = "3, 0", expect = ACCEPTABLE, desc = "Event idx: kick, device sleeps. Flags: no kick (NO_NOTIFY still seen), the re-check saw the work.")
    @Outcome(id = "2, 3", expect = ACCEPTABLE, desc = "Event idx: kick, and the re-check saw the work. Flags: kick, device sleeps.")
    @Outcome(id = "2, 2", expect = ACCEPTABLE, desc = "Both queues: kick sent, and the device's re-check saw the work too.")
    @Outcome(id = "2, 0", expect = ACCEPTABLE, desc = "Event idx: kick, re-check saw the work. Flags: no kick, re-check saw the work.")
    @Outcome(id = "0, 3", expect = ACCEPTABLE, desc = "Event idx: no kick (old avail_event seen), re-check saw the work. Flags: kick, device sleeps.")
    @Outcome(id = "0, 2", expect = ACCEPTABLE, desc = "Event idx: no kick, re-check saw the work. Flags: kick, re-check saw the work.")
    @Outcome(id = "0, 0", expect = ACCEPTABLE, desc = "Both queues: no kick, and the device's re-check saw the work.")
    @Outcome(expect = FORBIDDEN, desc = "A 1 on either queue: lost notification, no kick while the device sleeps with a request pending.")
    @State
    public static class Avail {
        private final QueuePair withEventIdx = new QueuePair(QueuePair.EVENT_IDX);
        private final QueuePair withFlags = new QueuePair(QueuePair.FLAGS_ONLY);
        private boolean kickE;
        private boolean kickF;
        private boolean idleE;
        private boolean idleF;

        /** Builds the pre-state of both queues. */
        public Avail() {
            withEventIdx.addOut(0, 0);
            withEventIdx.driver.kickPrepare();
            withEventIdx.device.pushUsed(withEventIdx.popExpected(), 0);
            withEventIdx.device.needsInterrupt();
            if (withEventIdx.driver.reap((token, lengthBytes) -> { }, 1) != 1) {
                throw new IllegalStateException("set-up reap found nothing: " + withEventIdx.driver);
            }
            withFlags.device.disableNotifications();
        }

        /** Adds a request to each queue and decides whether to kick. */
        @Actor
        public void driver() {
            kickE = addAndKick(withEventIdx);
            kickF = addAndKick(withFlags);
        }

        /** Re-enables notifications on each queue and re-checks. */
        @Actor
        public void device() {
            idleE = withEventIdx.device.enableNotifications();
            idleF = withFlags.device.enableNotifications();
        }

        /**
         * Combines the two sides' answers once both actors are done.
         *
         * @param r r1 = event-index queue, r2 = flags queue, as {@link EventIdxRecheck#code}
         */
        @Arbiter
        public void outcome(II_Result r) {
            r.r1 = code(kickE, idleE);
            r.r2 = code(kickF, idleF);
        }

        private static boolean addAndKick(QueuePair q) {
            q.driver.add(q.sg.clear().out(QueuePair.bufferGpa(1), QueuePair.BUFFER_BYTES), 1);
            return q.driver.kickPrepare();
        }
    }

    /**
     * Used side. Device: {@code pushUsed} + {@code needsInterrupt} (notified = interrupt). Driver:
     * {@code enableCallbacks} (idle = no used entry pending, it would wait for an interrupt).
     *
     * <p>Pre-state, both queues: a request was added and popped, and the driver disabled callbacks
     * (event index: {@code used_event} moved out of reach; flags: {@code VIRTQ_AVAIL_F_NO_INTERRUPT}
     * set).
     */
    @JCStressTest
    @Outcome(id = "3, 3", expect = ACCEPTABLE, desc = "Both queues: interrupt sent; the driver waits until it arrives.")
    @Outcome(id = "3, 2", expect = ACCEPTABLE, desc = "Event idx: interrupt, driver waits. Flags: interrupt, and the driver's re-check saw the completion.")
    @Outcome(id = "3, 0", expect = ACCEPTABLE, desc = "Event idx: interrupt, driver waits. Flags: no interrupt (NO_INTERRUPT still seen), re-check saw it.")
    @Outcome(id = "2, 3", expect = ACCEPTABLE, desc = "Event idx: interrupt, and the re-check saw the completion. Flags: interrupt, driver waits.")
    @Outcome(id = "2, 2", expect = ACCEPTABLE, desc = "Both queues: interrupt sent, and the driver's re-check saw the completion too.")
    @Outcome(id = "2, 0", expect = ACCEPTABLE, desc = "Event idx: interrupt, re-check saw it. Flags: no interrupt, re-check saw it.")
    @Outcome(id = "0, 3", expect = ACCEPTABLE, desc = "Event idx: no interrupt (old used_event seen), re-check saw it. Flags: interrupt, driver waits.")
    @Outcome(id = "0, 2", expect = ACCEPTABLE, desc = "Event idx: no interrupt, re-check saw it. Flags: interrupt, re-check saw it.")
    @Outcome(id = "0, 0", expect = ACCEPTABLE, desc = "Both queues: no interrupt, and the driver's re-check saw the completion.")
    @Outcome(expect = FORBIDDEN, desc = "A 1 on either queue: lost interrupt, none sent while the driver waits with a completion pending.")
    @State
    public static class Used {
        private final QueuePair withEventIdx = new QueuePair(QueuePair.EVENT_IDX);
        private final QueuePair withFlags = new QueuePair(QueuePair.FLAGS_ONLY);
        private final DescriptorChain chainE;
        private final DescriptorChain chainF;
        private boolean interruptE;
        private boolean interruptF;
        private boolean idleE;
        private boolean idleF;

        /** Builds the pre-state of both queues. */
        public Used() {
            chainE = popped(withEventIdx);
            chainF = popped(withFlags);
        }

        private static DescriptorChain popped(QueuePair q) {
            q.addIn(0, 0);
            DescriptorChain chain = q.popExpected();
            q.driver.disableCallbacks();
            return chain;
        }

        /** Completes the request on each queue and decides whether to interrupt. */
        @Actor
        public void device() {
            withEventIdx.device.pushUsed(chainE, 0);
            interruptE = withEventIdx.device.needsInterrupt();
            withFlags.device.pushUsed(chainF, 0);
            interruptF = withFlags.device.needsInterrupt();
        }

        /** Re-enables callbacks on each queue and re-checks. */
        @Actor
        public void driver() {
            idleE = withEventIdx.driver.enableCallbacks();
            idleF = withFlags.driver.enableCallbacks();
        }

        /**
         * Combines the two sides' answers once both actors are done.
         *
         * @param r r1 = event-index queue, r2 = flags queue, as {@link EventIdxRecheck#code}
         */
        @Arbiter
        public void outcome(II_Result r) {
            r.r1 = code(interruptE, idleE);
            r.r2 = code(interruptF, idleF);
        }
    }
}
