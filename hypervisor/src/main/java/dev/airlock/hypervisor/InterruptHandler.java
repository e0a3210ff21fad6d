package dev.airlock.hypervisor;

/**
 * A VM's interrupt entry point, set with {@link VmContext#setInterruptHandler}.
 *
 * <p>The in-process runtime calls it on the VM's own interrupt thread, one interrupt at a time,
 * never concurrently with itself. It may make hypercalls. If it throws, the VM dies: the runtime
 * logs the exception and destroys the VM, and its peers receive {@link InterruptCause#PEER_GONE}.
 */
@FunctionalInterface
public interface InterruptHandler {
    /**
     * Handles one interrupt.
     *
     * @param interrupt the cause and the peer it is about
     */
    void onInterrupt(Interrupt interrupt);
}
