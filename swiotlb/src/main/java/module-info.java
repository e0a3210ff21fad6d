/**
 * Bounce pools in the style of Linux's swiotlb: 2 KiB slots in a shared region, through which a
 * VM with private memory copies every I/O buffer so that a device in another VM can reach it.
 */
module dev.airlock.swiotlb {
    requires transitive dev.airlock.memory;

    exports dev.airlock.swiotlb;
}
