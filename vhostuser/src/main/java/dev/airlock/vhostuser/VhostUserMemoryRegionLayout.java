package dev.airlock.vhostuser;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * A memory region of the front-end (vhost-user.rst, "Memory regions description" and "Single
 * memory region description"), host byte order.
 *
 * <pre>
 *  region (32 bytes)
 *  0                 8               16                24                32
 *  +-----------------+---------------+-----------------+-----------------+
 *  | guest_phys_addr | memory_size   | userspace_addr  | mmap_offset     |
 *  +-----------------+---------------+-----------------+-----------------+
 *
 *  SET_MEM_TABLE payload: u32 nregions | u32 padding | region[nregions]     8 + 32 * n bytes
 *  ADD_MEM_REG / REM_MEM_REG payload: u64 padding | region               40 bytes
 * </pre>
 *
 * <table>
 *   <caption>Fields</caption>
 *   <tr><th>field</th><th>meaning</th><th>written by / read by</th></tr>
 *   <tr><td>guest_phys_addr</td><td>where the region starts in guest-physical space (descriptors)</td>
 *       <td>front-end / back-end, checked for overlap</td></tr>
 *   <tr><td>memory_size</td><td>length, non-zero, no wrap</td><td>front-end / back-end</td></tr>
 *   <tr><td>userspace_addr</td><td>where the front-end maps it (ring addresses of SET_VRING_ADDR)</td>
 *       <td>front-end / back-end, checked for overlap</td></tr>
 *   <tr><td>mmap_offset</td><td>offset of the region in the passed fd</td><td>front-end / back-end, checked against the file size</td></tr>
 * </table>
 */
final class VhostUserMemoryRegionLayout {
    /** One region. */
    static final StructLayout LAYOUT = MemoryLayout.structLayout(
            JAVA_LONG.withName("guest_phys_addr"),
            JAVA_LONG.withName("memory_size"),
            JAVA_LONG.withName("userspace_addr"),
            JAVA_LONG.withName("mmap_offset"));
    static final long GUEST_PHYS_ADDR_OFFSET = LAYOUT.byteOffset(groupElement("guest_phys_addr"));
    static final long MEMORY_SIZE_OFFSET = LAYOUT.byteOffset(groupElement("memory_size"));
    static final long USERSPACE_ADDR_OFFSET = LAYOUT.byteOffset(groupElement("userspace_addr"));
    static final long MMAP_OFFSET_OFFSET = LAYOUT.byteOffset(groupElement("mmap_offset"));
    static final int REGION_LENGTH = 32;

    /** The SET_MEM_TABLE header before the regions. */
    static final StructLayout TABLE_HEADER = MemoryLayout.structLayout(
            JAVA_INT.withName("nregions"), JAVA_INT.withName("padding"));
    static final long NREGIONS_OFFSET = TABLE_HEADER.byteOffset(groupElement("nregions"));
    static final int TABLE_HEADER_LENGTH = 8;
    /** VHOST_MEMORY_BASELINE_NREGIONS: the most regions one SET_MEM_TABLE carries. */
    static final int MAX_TABLE_REGIONS = 8;

    /** ADD_MEM_REG and REM_MEM_REG: a u64 of padding, then one region. */
    static final int SINGLE_REGION_PADDING_LENGTH = 8;
    static final int SINGLE_REGION_MESSAGE_LENGTH = SINGLE_REGION_PADDING_LENGTH + REGION_LENGTH;

    static {
        if (LAYOUT.byteSize() != REGION_LENGTH || TABLE_HEADER.byteSize() != TABLE_HEADER_LENGTH) {
            throw new ExceptionInInitializerError("vhost-user memory region layout has the wrong size");
        }
    }

    private VhostUserMemoryRegionLayout() {
    }

    /** The payload length of a SET_MEM_TABLE with {@code regions} regions. */
    static int tableLength(int regions) {
        return TABLE_HEADER_LENGTH + REGION_LENGTH * regions;
    }
}
