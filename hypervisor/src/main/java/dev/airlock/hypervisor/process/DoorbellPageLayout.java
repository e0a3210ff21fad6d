package dev.airlock.hypervisor.process;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

/**
 * The doorbell page of one primary/secondary pair: a memfd of one page mapped by exactly those two
 * VM processes (the daemon creates it and never maps it). One direction per cache-line pair, so the
 * two directions' hot words never share a line:
 *
 * <pre>
 *  offset  size  field                       written by                     read by
 *  0       8     pendingToPrimary            secondary (getAndBitwiseOr),   both
 *                                            primary (getAndSet 0)
 *  8       4     primaryMasked (0/1)         primary (setVolatile)          secondary (getVolatile)
 *  128     8     pendingToSecondary          primary (OR), secondary (getAndSet 0)   both
 *  136     4     secondaryMasked             secondary (setVolatile)        primary (getVolatile)
 * </pre>
 *
 * Ring: OR the flags into the target's pending word; if it was zero and the target's mask word is
 * 0, write 1 to the target's eventfd. Unmask: store 0 to the mask, then if the pending word is
 * non-zero raise DOORBELL locally. Both are volatile (sequentially consistent) accesses, so a ring
 * that sees the mask set is followed by an unmask that sees its flags: no wake-up is lost (the same
 * argument as the in-process runtime's doorbell). The peer may write anything here; the words are
 * flags and a mask, so the worst it can do is wake or fail to wake its own pair's doorbell.
 */
final class DoorbellPageLayout {
    /** The size of the page. */
    static final long PAGE_LENGTH = 4096;
    /** Separates the directions: two 64-byte lines, against adjacent-line prefetch. */
    static final long DIRECTION_LENGTH = 128;

    static final StructLayout DIRECTION = MemoryLayout.structLayout(
            ValueLayout.JAVA_LONG.withName("pending"),
            ValueLayout.JAVA_INT.withName("masked"),
            MemoryLayout.paddingLayout(DIRECTION_LENGTH - 12));
    static final long PENDING_OFFSET = DIRECTION.byteOffset(groupElement("pending"));
    static final long MASKED_OFFSET = DIRECTION.byteOffset(groupElement("masked"));
    /** Where the direction toward the primary starts. */
    static final long TO_PRIMARY_OFFSET = 0;
    /** Where the direction toward the secondary starts. */
    static final long TO_SECONDARY_OFFSET = DIRECTION_LENGTH;

    static final VarHandle PENDING = ValueLayout.JAVA_LONG.varHandle();
    static final VarHandle MASKED = ValueLayout.JAVA_INT.varHandle();

    static {
        if (DIRECTION.byteSize() != DIRECTION_LENGTH || 2 * DIRECTION_LENGTH > PAGE_LENGTH) {
            throw new ExceptionInInitializerError("doorbell page layout is " + DIRECTION.byteSize() + " bytes per direction");
        }
    }

    private DoorbellPageLayout() {
    }

    /** ORs flags into a direction; returns the previous word. */
    static long ring(MemorySegment page, long direction, long flags) {
        return (long) PENDING.getAndBitwiseOr(page, direction + PENDING_OFFSET, flags);
    }

    static long readAndClear(MemorySegment page, long direction) {
        return (long) PENDING.getAndSet(page, direction + PENDING_OFFSET, 0L);
    }

    static long pending(MemorySegment page, long direction) {
        return (long) PENDING.getVolatile(page, direction + PENDING_OFFSET);
    }

    static boolean masked(MemorySegment page, long direction) {
        return (int) MASKED.getVolatile(page, direction + MASKED_OFFSET) != 0;
    }

    static void setMasked(MemorySegment page, long direction, boolean masked) {
        MASKED.setVolatile(page, direction + MASKED_OFFSET, masked ? 1 : 0);
    }
}
