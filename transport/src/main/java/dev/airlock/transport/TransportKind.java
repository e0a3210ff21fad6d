package dev.airlock.transport;

/** The transports a device can be served on; every device works on every one. */
public enum TransportKind {
    /** virtio-mmio version 2 registers carried as request/response messages; notifications as doorbells. */
    MSGQ_MMIO,
    /** A header at the start of the shared region and a write/ring/acknowledge handshake; no messages. */
    SHMEM_DOORBELL
}
