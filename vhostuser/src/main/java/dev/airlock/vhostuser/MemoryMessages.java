package dev.airlock.vhostuser;

import dev.airlock.memory.sys.Linux;

import static dev.airlock.vhostuser.VhostUserMemoryRegionLayout.GUEST_PHYS_ADDR_OFFSET;
import static dev.airlock.vhostuser.VhostUserMemoryRegionLayout.MEMORY_SIZE_OFFSET;
import static dev.airlock.vhostuser.VhostUserMemoryRegionLayout.MMAP_OFFSET_OFFSET;
import static dev.airlock.vhostuser.VhostUserMemoryRegionLayout.USERSPACE_ADDR_OFFSET;

/** SET_MEM_TABLE, ADD_MEM_REG and REM_MEM_REG: validation and application to the memory table. */
final class MemoryMessages {
    private MemoryMessages() {
    }

    /** Replaces the whole table; regions and fds must match one to one. */
    static void setMemTable(VhostUserMessage m, DeviceRunner runner) {
        if (m.payload.byteSize() < VhostUserMemoryRegionLayout.TABLE_HEADER_LENGTH) {
            throw new VhostUserProtocolException(m.name() + ".size", m.payload.byteSize(), "shorter than the region count");
        }
        long count = Integer.toUnsignedLong(m.u32(VhostUserMemoryRegionLayout.NREGIONS_OFFSET));
        if (count < 1 || count > VhostUserMemoryRegionLayout.MAX_TABLE_REGIONS) {
            throw new VhostUserProtocolException(m.name() + ".nregions", count, "not 1 to " + VhostUserMemoryRegionLayout.MAX_TABLE_REGIONS);
        }
        int regions = (int) count;
        m.expectSize(VhostUserMemoryRegionLayout.tableLength(regions));
        m.expectFds(regions);
        int[] fds = new int[regions];
        for (int i = 0; i < regions; i++) {
            fds[i] = m.takeFd(i);
        }
        runner.changeMemory(() -> {
            GuestMemoryTable table = runner.memory();
            table.close();
            int next = 0;
            try {
                for (; next < regions; next++) {
                    long base = VhostUserMemoryRegionLayout.TABLE_HEADER_LENGTH + (long) VhostUserMemoryRegionLayout.REGION_LENGTH * next;
                    table.add(m.name() + ".regions[" + next + "]", m.u64(base + GUEST_PHYS_ADDR_OFFSET), m.u64(base + MEMORY_SIZE_OFFSET),
                            m.u64(base + USERSPACE_ADDR_OFFSET), m.u64(base + MMAP_OFFSET_OFFSET), fds[next]);
                }
            } finally {
                for (int rest = next + 1; rest < regions; rest++) {
                    Linux.close(fds[rest]);
                }
            }
        });
    }

    /** Maps one more region; exactly one fd. */
    static void addMemReg(VhostUserMessage m, DeviceRunner runner) {
        m.expectSize(VhostUserMemoryRegionLayout.SINGLE_REGION_MESSAGE_LENGTH);
        m.expectFds(1);
        int fd = m.takeFd(0);
        long base = VhostUserMemoryRegionLayout.SINGLE_REGION_PADDING_LENGTH;
        runner.changeMemory(() -> runner.memory().add(m.name() + ".region", m.u64(base + GUEST_PHYS_ADDR_OFFSET),
                m.u64(base + MEMORY_SIZE_OFFSET), m.u64(base + USERSPACE_ADDR_OFFSET), m.u64(base + MMAP_OFFSET_OFFSET), fd));
    }

    /** Unmaps the region with these bounds; a stray fd (allowed by the spec) is closed unused. */
    static void remMemReg(VhostUserMessage m, DeviceRunner runner) {
        m.expectSize(VhostUserMemoryRegionLayout.SINGLE_REGION_MESSAGE_LENGTH);
        if (m.fdCount() > 1) {
            m.expectFds(1);
        }
        long base = VhostUserMemoryRegionLayout.SINGLE_REGION_PADDING_LENGTH;
        runner.changeMemory(() -> runner.memory().remove(m.name() + ".region", m.u64(base + GUEST_PHYS_ADDR_OFFSET),
                m.u64(base + MEMORY_SIZE_OFFSET), m.u64(base + USERSPACE_ADDR_OFFSET)));
    }
}
