/**
 * The DMA operations the virtio core uses for every buffer: direct (the memory is already shared)
 * and bounce (through a swiotlb pool), the seed's "virtio bounce DMA ops".
 */
module dev.airlock.dma {
    requires transitive dev.airlock.memory;
    requires transitive dev.airlock.swiotlb;

    exports dev.airlock.dma;
}
