package dev.airlock.devices.rng;

import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioFault;
import dev.airlock.virtio.VirtioProtocolException;

/**
 * The request parser of the entropy device (VIRTIO 1.2 §5.4.6): a request is a chain of
 * device-writable buffers only, which the device fills with random bytes. A device-readable
 * buffer breaks the protocol (§5.4.6.1: the driver places no device-readable buffers on the
 * requestq). It works on a chain the queue has already validated, and reads nothing from guest
 * memory.
 *
 * @param lengthBytes how many bytes to write: the chain's writable bytes, capped per request
 */
public record RngRequest(int lengthBytes) {
    /**
     * Checks the length.
     *
     * @throws IllegalArgumentException if it is negative
     */
    public RngRequest {
        if (lengthBytes < 0) {
            throw new IllegalArgumentException("negative request length " + lengthBytes);
        }
    }

    /**
     * Parses a chain.
     *
     * @param chain           a validated chain from the requestq
     * @param maxRequestBytes the most bytes one request gets, at least 1
     * @param source          the queue's name, for the fault record
     * @return the request
     * @throws VirtioProtocolException if the chain holds a device-readable buffer
     */
    public static RngRequest parse(DescriptorChain chain, int maxRequestBytes, String source) {
        if (chain.readableCount() != 0) {
            throw new VirtioProtocolException(new VirtioFault(source, "chain[" + chain.head() + "].readableBytes", chain.readableBytes(),
                    "device-readable buffer (" + chain.readableBytes() + " bytes) on the requestq (§5.4.6.1)"));
        }
        return new RngRequest((int) Math.min(chain.writableBytes(), maxRequestBytes));
    }
}
