package dev.airlock.devices.console;

import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioProtocolException;

/**
 * The request parser of the console device (VIRTIO 1.2 §5.3.6): a receiveq buffer is
 * device-writable only (the device fills it with input), a transmitq buffer device-readable only
 * (the device consumes it). Anything else breaks the protocol. Works on chains the queue has
 * already validated, and reads nothing from guest memory.
 */
public final class ConsoleRequest {
    private ConsoleRequest() {
    }

    /**
     * Checks a chain from the receiveq.
     *
     * @param chain  a validated chain
     * @param source the queue's name, for the fault record
     * @return the bytes the device may write into it
     * @throws VirtioProtocolException if the chain holds a device-readable buffer
     */
    public static long parseReceive(DescriptorChain chain, String source) {
        if (chain.readableCount() != 0) {
            throw new VirtioProtocolException(new VirtioFault(source, "chain[" + chain.head() + "].readableBytes", chain.readableBytes(),
                    "device-readable buffer (" + chain.readableBytes() + " bytes) on the receiveq (§5.3.6)"));
        }
        return chain.writableBytes();
    }

    /**
     * Checks a chain from the transmitq.
     *
     * @param chain  a validated chain
     * @param source the queue's name, for the fault record
     * @return the bytes the guest sends in it
     * @throws VirtioProtocolException if the chain holds a device-writable buffer
     */
    public static long parseTransmit(DescriptorChain chain, String source) {
        if (chain.writableCount() != 0) {
            throw new VirtioProtocolException(new VirtioFault(source, "chain[" + chain.head() + "].writableBytes", chain.writableBytes(),
                    "device-writable buffer (" + chain.writableBytes() + " bytes) on the transmitq (§5.3.6)"));
        }
        return chain.readableBytes();
    }
}
