package dev.airlock.transport;

import java.util.List;

/**
 * The transports between a virtio driver and its device. The first two run over the hypervisor's
 * primitives and every device works on both ({@link #hosted()}); {@code VHOST_USER} is the driver
 * side only: Airlock acting as the VMM toward a vhost-user backend it did not write.
 */
public enum TransportKind {
    /** virtio-mmio version 2 registers carried as request/response messages; notifications as doorbells. */
    MSGQ_MMIO,
    /** A header at the start of the shared region and a write/ring/acknowledge handshake; no messages. */
    SHMEM_DOORBELL,
    /**
     * vhost-user frontend: control as messages on a Unix socket, notifications as eventfds, the
     * rings and bounce pool in a memfd region handed to the backend. {@link DeviceHost} does not serve it.
     */
    VHOST_USER;

    private static final List<TransportKind> HOSTED = List.of(MSGQ_MMIO, SHMEM_DOORBELL);

    /**
     * The transports {@link DeviceHost} serves and {@link DriverHost} opens: those over the
     * hypervisor's message queue, shared regions and doorbells.
     *
     * @return MSGQ_MMIO and SHMEM_DOORBELL
     */
    public static List<TransportKind> hosted() {
        return HOSTED;
    }

    /**
     * Whether {@link DeviceHost} serves this transport.
     *
     * @return whether it runs over the hypervisor's primitives
     */
    public boolean isHosted() {
        return this != VHOST_USER;
    }
}
