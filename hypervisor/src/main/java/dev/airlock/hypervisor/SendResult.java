package dev.airlock.hypervisor;

/** The outcome of a non-blocking {@link VmContext#sendMessage send}. */
public enum SendResult {
    /** The message is queued; the receiver gets {@link InterruptCause#MESSAGE_AVAILABLE} if the queue was empty. */
    OK,
    /**
     * The queue is at its depth and the message was not queued; the sender gets
     * {@link InterruptCause#QUEUE_NOT_FULL} when the receiver frees a slot.
     */
    FULL
}
