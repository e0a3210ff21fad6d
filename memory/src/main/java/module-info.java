/**
 * Guest memory: guest-physical address spaces made of private and shared regions, bounds-checked
 * translation of guest addresses to {@link java.lang.foreign.MemorySegment} slices, and the Linux
 * bindings (memfd, mmap, eventfd, futex) that the other parts need, through {@code java.lang.foreign}.
 */
module dev.airlock.memory {
    exports dev.airlock.memory;
    exports dev.airlock.memory.sys;
}
