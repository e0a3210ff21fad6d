/**
 * The split virtqueue of VIRTIO 1.2 §2.7 (driver side and device side, indirect descriptors, event
 * index), feature bits, and the device status state machine of §2.1 and §3.1.
 */
module dev.airlock.virtio {
    requires transitive dev.airlock.dma;

    exports dev.airlock.virtio;
}
