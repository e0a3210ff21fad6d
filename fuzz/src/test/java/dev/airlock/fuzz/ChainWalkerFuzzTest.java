package dev.airlock.fuzz;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.MemoryRegion;
import dev.airlock.memory.RegionKind;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.GuestRange;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtioProtocolException;
import dev.airlock.virtio.VirtqAvailLayout;
import dev.airlock.virtio.VirtqueueDevice;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The device-side chain walker against whatever a hostile driver can write: a descriptor table, an
 * avail ring and the bytes of a data area (where indirect tables may point). The input is
 * structured as in Cloud Hypervisor's virtqueue fuzzer: a queue shape, then ring bytes, then memory
 * bytes. Whatever the input, {@link VirtqueueDevice#pop()} must return a chain whose every range
 * lies inside the granted region and obeys the spec's rules, or null, or throw
 * {@link VirtioProtocolException} and stay broken; it must never hang or throw anything else.
 */
class ChainWalkerFuzzTest {
    private static final long REGION_GPA = 0x10_0000L;
    private static final int REGION_BYTES = 64 * 1024;
    private static final long DESC_OFFSET = 0;
    private static final long AVAIL_OFFSET = 0x1000;
    private static final long USED_OFFSET = 0x2000;
    private static final long DATA_OFFSET = 0x3000;

    @FuzzTest(maxDuration = "60s")
    void popNeverEscapesTheRegionOrTheRules(FuzzedDataProvider data) {
        int queueSize = 1 << data.consumeInt(0, 8);
        // Feature constants are bit numbers, so the set is built with VirtioFeatures.of.
        long features = VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1)
                | (data.consumeBoolean() ? VirtioFeatures.of(VirtioFeatures.VIRTIO_F_INDIRECT_DESC) : 0)
                | (data.consumeBoolean() ? VirtioFeatures.of(VirtioFeatures.VIRTIO_F_EVENT_IDX) : 0);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment region = arena.allocate(REGION_BYTES, 4096);
            byte[] descTable = data.consumeBytes(16 * queueSize);
            MemorySegment.copy(descTable, 0, region, ValueLayout.JAVA_BYTE, DESC_OFFSET, descTable.length);
            int availIdx = data.consumeInt(0, 0xffff);
            region.set(ValueLayout.JAVA_SHORT_UNALIGNED, AVAIL_OFFSET + VirtqAvailLayout.IDX_OFFSET, (short) availIdx);
            for (int slot = 0; slot < queueSize; slot++) {
                region.set(ValueLayout.JAVA_SHORT_UNALIGNED, AVAIL_OFFSET + VirtqAvailLayout.ringEntryOffset(slot),
                        (short) data.consumeInt(0, 0xffff));
            }
            byte[] memory = data.consumeRemainingAsBytes();
            MemorySegment.copy(memory, 0, region, ValueLayout.JAVA_BYTE, DATA_OFFSET,
                    (int) Math.min(memory.length, REGION_BYTES - DATA_OFFSET));

            GuestAddressSpace space = new GuestAddressSpace("fuzz");
            space.add(new MemoryRegion("fuzz", RegionKind.SHARED, REGION_GPA, region));
            VirtqueueDevice device = new VirtqueueDevice("fuzz", space, queueSize, REGION_GPA + DESC_OFFSET,
                    REGION_GPA + AVAIL_OFFSET, REGION_GPA + USED_OFFSET, features);
            walk(device, queueSize);
        }
    }

    private static void walk(VirtqueueDevice device, int queueSize) {
        // Each pop consumes one avail entry, so queueSize + 1 pops cover every entry the driver can offer.
        for (int i = 0; i <= queueSize; i++) {
            DescriptorChain chain;
            try {
                chain = device.pop();
            } catch (VirtioProtocolException e) {
                assertTrue(device.isBroken(), "a protocol violation marks the queue broken");
                assertThrows(VirtioProtocolException.class, device::pop, "a broken queue stays broken");
                return;
            }
            if (chain == null) {
                return;
            }
            check(chain, queueSize);
            device.pushUsed(chain, 0);
        }
    }

    private static void check(DescriptorChain chain, int queueSize) {
        assertTrue(chain.head() >= 0 && chain.head() < queueSize, "head inside the table");
        assertTrue(chain.descriptorCount() >= 1 && chain.descriptorCount() <= queueSize, "chain bounded by the queue size");
        long readable = 0;
        for (GuestRange range : chain.readableRanges()) {
            checkRange(range);
            readable += range.lengthBytes();
        }
        long writable = 0;
        for (GuestRange range : chain.writableRanges()) {
            checkRange(range);
            writable += range.lengthBytes();
        }
        assertEquals(readable, chain.readableBytes());
        assertEquals(writable, chain.writableBytes());
        assertTrue(readable + writable < (1L << 32), "total length below 2^32");
    }

    private static void checkRange(GuestRange range) {
        assertTrue(range.lengthBytes() > 0);
        assertTrue(range.gpa() >= REGION_GPA && range.gpa() + range.lengthBytes() <= REGION_GPA + REGION_BYTES,
                "range inside the granted region: " + range);
        assertEquals(range.lengthBytes(), range.segment().byteSize());
    }
}
