package dev.airlock.memory;

import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

/**
 * The seed's second patch: a shared region sits at a different guest-physical base in each VM,
 * and both sides translate correctly. Two address spaces over two separate mappings of one memfd.
 */
class NonLinearMappingTest {
    private static final long PRIMARY_BASE = 0x4_0000_0000L;
    private static final long SECONDARY_BASE = 0x8000_0000L;
    private static final long SIZE = 1 << 20;

    @Test
    void shouldSeeTheSameBytesAtDifferentBasesThroughTwoMappings() {
        try (SharedMemory secondaryView = SharedMemory.create("pair-1-2", SIZE);
             SharedMemory primaryView = SharedMemory.map("pair-1-2", secondaryView.fd(), SIZE, false)) {
            assertNotEquals(secondaryView.segment().address(), primaryView.segment().address(),
                    "two mmaps of one memfd must be two virtual mappings");
            GuestAddressSpace secondary = new GuestAddressSpace("secondary");
            GuestAddressSpace primary = new GuestAddressSpace("primary");
            secondary.add(secondaryView.region(SECONDARY_BASE));
            primary.add(primaryView.region(PRIMARY_BASE));

            long offset = 0x1_2340;
            secondary.translate(SECONDARY_BASE + offset, 8).set(ValueLayout.JAVA_LONG, 0, 0xfeedfacecafebeefL);
            MemorySegment seenByPrimary = primary.translate(PRIMARY_BASE + offset, 8);
            assertEquals(0xfeedfacecafebeefL, seenByPrimary.get(ValueLayout.JAVA_LONG, 0));

            primary.translate(PRIMARY_BASE + SIZE - 4, 4).set(ValueLayout.JAVA_INT, 0, 42);
            assertEquals(42, secondary.translate(SECONDARY_BASE + SIZE - 4, 4).get(ValueLayout.JAVA_INT, 0));

            // The secondary's base means nothing in the primary's space, and vice versa.
            assertFalse(primary.contains(SECONDARY_BASE + offset, 8));
            assertFalse(secondary.contains(PRIMARY_BASE + offset, 8));
        }
    }
}
