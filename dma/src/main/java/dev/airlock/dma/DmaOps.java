package dev.airlock.dma;

import dev.airlock.swiotlb.DmaDirection;

/**
 * The DMA operations of one device, as the driver (guest) side sees them. The virtio core maps every
 * buffer through these before its address reaches a descriptor, and unmaps it when the device has
 * used it.
 *
 * <p>Addresses: {@code gpa} is a guest-physical address in the driver VM's own address space (its
 * private RAM, say); a DMA address is what the device is given, an address in the driver's view of
 * the region it shares with the device. The device translates DMA addresses through its own view of
 * the same region, which may sit at a different base (the non-linear mapping).
 *
 * <p>Implementations are thread-safe.
 */
public interface DmaOps {
    /**
     * Makes {@code [gpa, gpa + lengthBytes)} available to the device. For data going to the device
     * the bytes are visible to it when this returns.
     *
     * @param gpa         the buffer in the driver's address space
     * @param lengthBytes its length, at least 1
     * @param direction   which way the data flows
     * @return the DMA address to hand to the device
     * @throws DmaMappingException if the buffer cannot be mapped (pool exhausted, private memory
     *                             with direct ops, or an address outside the driver's memory)
     */
    long mapSingle(long gpa, long lengthBytes, DmaDirection direction);

    /**
     * Ends a mapping made by {@link #mapSingle}. For data coming from the device the original holds
     * the device's bytes when this returns.
     *
     * @param dmaAddr     the address {@link #mapSingle} returned
     * @param lengthBytes the length given to {@link #mapSingle}
     * @param direction   the direction given to {@link #mapSingle}
     */
    void unmapSingle(long dmaAddr, long lengthBytes, DmaDirection direction);

    /**
     * Lets the CPU see what the device wrote into part of a live mapping.
     *
     * @param dmaAddr     an address inside a live mapping
     * @param lengthBytes how many bytes from there
     * @param direction   the mapping's direction
     */
    void syncForCpu(long dmaAddr, long lengthBytes, DmaDirection direction);

    /**
     * Lets the device see what the CPU wrote into part of a live mapping.
     *
     * @param dmaAddr     an address inside a live mapping
     * @param lengthBytes how many bytes from there
     * @param direction   the mapping's direction
     */
    void syncForDevice(long dmaAddr, long lengthBytes, DmaDirection direction);

    /**
     * Allocates zeroed memory that the driver and the device share without copies (the vrings).
     *
     * @param sizeBytes at least 1
     * @param alignment a power of two
     * @return the buffer
     * @throws DmaMappingException if there is no room
     */
    CoherentBuffer allocCoherent(long sizeBytes, long alignment);

    /**
     * Frees a buffer from {@link #allocCoherent}.
     *
     * @param buffer the buffer
     */
    void freeCoherent(CoherentBuffer buffer);
}
