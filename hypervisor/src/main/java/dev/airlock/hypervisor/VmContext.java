package dev.airlock.hypervisor;

import dev.airlock.memory.GuestAddressSpace;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * The hypercall interface of one VM: what that VM's code (a frontend driver in a secondary, a
 * device backend in the primary) may ask of the hypervisor. The caller's identity is bound into the
 * handle; every call is checked against it and the grants it holds, and refused with a
 * {@link HypervisorRefusedException} whose reason says why:
 * <ul>
 *   <li>{@link RefusalReason#NOT_RUNNING}: this VM is not running;</li>
 *   <li>{@link RefusalReason#NO_SUCH_VM}: the peer id names no VM this VM knows;</li>
 *   <li>{@link RefusalReason#WRONG_VM}: the peer is this VM, or both are secondaries;</li>
 *   <li>{@link RefusalReason#NOT_GRANTED}: no queue or doorbell connects them;</li>
 *   <li>{@link RefusalReason#REVOKED}: the peer was destroyed or died;</li>
 *   <li>{@link RefusalReason#MESSAGE_TOO_LARGE}: a message longer than {@link #maxMessageBytes()}.</li>
 * </ul>
 *
 * <p>Every method may be called from any thread. Message and doorbell calls never block.
 * Message queues are FIFO per direction and safe for several sending and several receiving threads.
 */
public interface VmContext {
    /** What {@link #receiveMessage(VmId, MemorySegment)} returns when the queue is empty. */
    int EMPTY = -1;

    /**
     * This VM's id.
     *
     * @return the id
     */
    VmId id();

    /**
     * This VM's name.
     *
     * @return the name
     */
    String name();

    /**
     * This VM's role.
     *
     * @return primary or secondary
     */
    VmRole role();

    /**
     * This VM's current state.
     *
     * @return the state
     */
    VmState state();

    /**
     * The largest message this hypervisor carries.
     *
     * @return the size in bytes, 240 by default
     */
    int maxMessageBytes();

    /**
     * This VM's guest-physical address space: its private RAM and the shared regions granted to
     * it. Translation is bounds-checked; the space holds nothing this VM was not granted.
     *
     * @return the address space
     */
    GuestAddressSpace addressSpace();

    /**
     * The shared regions granted to this VM, each at this VM's own base.
     *
     * @return a snapshot
     */
    List<SharedRegionMapping> sharedRegions();

    /**
     * The peers this VM holds a live grant with (a queue, a doorbell or a region).
     *
     * @return a snapshot
     */
    Set<VmId> peers();

    /**
     * Sets the interrupt handler, replacing the previous one. Interrupts that arrive with no
     * handler set are delivered to nothing and dropped (the events themselves, messages and
     * doorbell flags, stay until read).
     *
     * @param handler the handler, or {@code null} for none
     */
    void setInterruptHandler(InterruptHandler handler);

    /**
     * Queues a message for a peer, without blocking. The bytes are copied before the call returns.
     *
     * @param peer    the receiver
     * @param message the bytes, at most {@link #maxMessageBytes()}
     * @return {@link SendResult#OK} or {@link SendResult#FULL}
     * @throws HypervisorRefusedException if refused
     */
    SendResult sendMessage(VmId peer, MemorySegment message);

    /**
     * Queues a message for a peer, without blocking.
     *
     * @param peer    the receiver
     * @param message the bytes, at most {@link #maxMessageBytes()}
     * @return {@link SendResult#OK} or {@link SendResult#FULL}
     * @throws HypervisorRefusedException if refused
     */
    default SendResult sendMessage(VmId peer, byte[] message) {
        return sendMessage(peer, MemorySegment.ofArray(message));
    }

    /**
     * Takes the oldest message from a peer into {@code buffer}, without blocking and without
     * allocating.
     *
     * @param peer   the sender
     * @param buffer where to copy the message; at least {@link #maxMessageBytes()} long
     * @return the message's length in bytes, or {@link #EMPTY}
     * @throws HypervisorRefusedException if refused
     * @throws IllegalArgumentException   if the buffer is shorter than {@link #maxMessageBytes()}
     */
    int receiveMessage(VmId peer, MemorySegment buffer);

    /**
     * Takes the oldest message from a peer, without blocking.
     *
     * @param peer the sender
     * @return the message, or empty if there is none
     * @throws HypervisorRefusedException if refused
     */
    Optional<byte[]> receiveMessage(VmId peer);

    /**
     * Rings a peer's doorbell: ORs {@code flags} into the flags pending at the peer and, unless the
     * peer masked this doorbell, injects {@link InterruptCause#DOORBELL} into it.
     *
     * @param peer  the VM to ring
     * @param flags the flags to set, not zero
     * @throws HypervisorRefusedException if refused
     * @throws IllegalArgumentException   if {@code flags} is zero
     */
    void ringDoorbell(VmId peer, long flags);

    /**
     * Reads and clears the flags a peer has rung on this VM's doorbell (one atomic exchange).
     *
     * @param peer the ringer
     * @return the flags rung since the last read, 0 if none
     * @throws HypervisorRefusedException if refused
     */
    long readAndClearDoorbell(VmId peer);

    /**
     * Masks the doorbell from a peer: its rings still accumulate flags but inject no interrupt.
     * An interrupt raised before the mask may still be delivered.
     *
     * @param peer the ringer
     * @throws HypervisorRefusedException if refused
     */
    void maskDoorbell(VmId peer);

    /**
     * Unmasks the doorbell from a peer; if flags are pending, injects {@link InterruptCause#DOORBELL}.
     *
     * @param peer the ringer
     * @throws HypervisorRefusedException if refused
     */
    void unmaskDoorbell(VmId peer);
}
