package dev.airlock.swiotlb;

/**
 * Which way the data of a DMA mapping flows, in Linux's terms ({@code enum dma_data_direction}).
 * It decides when a bounce pool copies: into the slot at map time and on {@code syncForDevice}
 * for data going to the device, back to the original at unmap time and on {@code syncForCpu} for
 * data coming from it.
 */
public enum DmaDirection {
    /** The device reads the buffer (a virtio out-buffer, device-readable). */
    TO_DEVICE,
    /** The device writes the buffer (a virtio in-buffer, device-writable). */
    FROM_DEVICE,
    /** The device may read and write the buffer. */
    BIDIRECTIONAL;

    /**
     * Whether the original's bytes must reach the device's copy (map, syncForDevice).
     *
     * @return true for {@link #TO_DEVICE} and {@link #BIDIRECTIONAL}
     */
    public boolean toDevice() {
        return this != FROM_DEVICE;
    }

    /**
     * Whether the device's bytes must reach the original (unmap, syncForCpu).
     *
     * @return true for {@link #FROM_DEVICE} and {@link #BIDIRECTIONAL}
     */
    public boolean fromDevice() {
        return this != TO_DEVICE;
    }
}
