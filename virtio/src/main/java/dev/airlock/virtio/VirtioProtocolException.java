package dev.airlock.virtio;

import dev.airlock.memory.GuestMemoryException;

import java.io.Serial;
import java.util.Objects;

/**
 * The other side of a virtqueue broke the protocol: a guest wrote a descriptor, ring index or ring
 * address that the device must refuse. The queue that threw is marked broken; the transport sets
 * {@link DeviceStatus#DEVICE_NEEDS_RESET} and every other device keeps running.
 */
public final class VirtioProtocolException extends GuestMemoryException {
    @Serial
    private static final long serialVersionUID = 1L;

    private final VirtioFault fault;

    /**
     * Creates the exception.
     *
     * @param fault what was wrong
     */
    public VirtioProtocolException(VirtioFault fault) {
        super(Objects.requireNonNull(fault, "fault").message());
        this.fault = fault;
    }

    /**
     * The recorded fault.
     *
     * @return the queue, field, value and rule
     */
    public VirtioFault fault() {
        return fault;
    }
}
