package dev.airlock.vhostuser;

/**
 * A queue the frontend driver set up, kept by {@link VhostUserDriverTransport} until DRIVER_OK
 * starts it on the backend.
 *
 * @param size      the queue size
 * @param descAddr  the descriptor table (a DMA address in the shared region)
 * @param availAddr the available ring
 * @param usedAddr  the used ring
 * @param started   whether the backend runs it (GET_VRING_BASE stops it)
 */
record VhostUserQueueSetup(int size, long descAddr, long availAddr, long usedAddr, boolean started) {
    VhostUserQueueSetup withStarted(boolean value) {
        return new VhostUserQueueSetup(size, descAddr, availAddr, usedAddr, value);
    }
}
