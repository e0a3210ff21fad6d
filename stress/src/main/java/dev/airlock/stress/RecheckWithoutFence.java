package dev.airlock.stress;

import dev.airlock.virtio.Virtqueues;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.ZZ_Result;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE_INTERESTING;

/**
 * Negative control for {@link EventIdxRecheck}: the avail-side event-index protocol of
 * {@code VirtqueueDriver.kickPrepare} and {@code VirtqueueDevice.enableNotifications}, copied over
 * a bare native segment with the two full fences removed and everything else kept (release store
 * and acquire load of the avail idx, plain accesses to {@code avail_event}, the
 * {@code vring_need_event} rule). It shows that the forbidden outcome of {@link EventIdxRecheck}
 * is reachable, and so that that test could fail, when the fences are missing: the lost
 * notification is reported here as interesting, not as a failure, so the suite stays green.
 *
 * <p>Pre-state as in {@link EventIdxRecheck.Avail}: avail idx 1, {@code avail_event} 0, the
 * device's {@code nextAvail} 1.
 */
@JCStressTest
@Outcome(id = "true, true", expect = ACCEPTABLE, desc = "The driver kicks; the device sleeps until the kick.")
@Outcome(id = "true, false", expect = ACCEPTABLE, desc = "The device saw the new avail idx; the kick is redundant.")
@Outcome(id = "false, false", expect = ACCEPTABLE, desc = "No kick, but the device's re-check saw the work.")
@Outcome(id = "false, true", expect = ACCEPTABLE_INTERESTING, desc = "Lost notification, reachable without the fences: "
        + "the store-buffering reordering the full fences in kickPrepare and enableNotifications forbid.")
@State
public class RecheckWithoutFence {
    private static final VarHandle U16 = ValueLayout.JAVA_SHORT.varHandle().withInvokeExactBehavior();
    /** The avail idx, written by the driver. */
    private static final long AVAIL_IDX_OFFSET = 0;
    /** avail_event, written by the device: on another cache line, as in the real rings. */
    private static final long AVAIL_EVENT_OFFSET = 128;

    private final MemorySegment rings = Arena.ofAuto().allocate(256, 64);
    private final int nextAvail = 1;

    /** Pre-state: one request went round; avail_event was never advanced. */
    public RecheckWithoutFence() {
        U16.set(rings, AVAIL_IDX_OFFSET, (short) 1);
    }

    /**
     * {@code add} + {@code kickPrepare} without the fence.
     *
     * @param r r1 = kick
     */
    @Actor
    public void driver(ZZ_Result r) {
        int oldIdx = 1;
        int availIdx = 2;
        U16.setRelease(rings, AVAIL_IDX_OFFSET, (short) availIdx);
        // VirtqueueDriver.kickPrepare has VarHandle.fullFence() here.
        int availEvent = (short) U16.get(rings, AVAIL_EVENT_OFFSET) & Virtqueues.IDX_MASK;
        r.r1 = Virtqueues.needEvent(availEvent, availIdx, oldIdx);
    }

    /**
     * {@code enableNotifications} without the fence.
     *
     * @param r r2 = nothing pending, so the device would sleep
     */
    @Actor
    public void device(ZZ_Result r) {
        U16.set(rings, AVAIL_EVENT_OFFSET, (short) nextAvail);
        // VirtqueueDevice.enableNotifications has VarHandle.fullFence() here.
        int idx = (short) U16.getAcquire(rings, AVAIL_IDX_OFFSET) & Virtqueues.IDX_MASK;
        r.r2 = idx == nextAvail;
    }
}
