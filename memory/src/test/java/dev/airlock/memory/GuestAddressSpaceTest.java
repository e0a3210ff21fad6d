package dev.airlock.memory;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GuestAddressSpaceTest {
    private final PrivateMemory ram = new PrivateMemory("ram", 64 * 1024);
    private final SharedMemory shared = SharedMemory.create("shared", 16 * 1024);

    @AfterEach
    void close() {
        ram.close();
        shared.close();
    }

    private GuestAddressSpace space() {
        GuestAddressSpace space = new GuestAddressSpace("vm1");
        space.add(ram.region(0x0));
        space.add(shared.region(0x1_0000_0000L));
        return space;
    }

    @Test
    void shouldTranslateRangesInsideOneRegion() {
        GuestAddressSpace space = space();
        MemorySegment slice = space.translate(0x100, 16);
        assertEquals(16, slice.byteSize());
        slice.set(ValueLayout.JAVA_LONG, 0, 0x1122334455667788L);
        assertEquals(0x1122334455667788L, ram.segment().get(ValueLayout.JAVA_LONG, 0x100));
        assertEquals(shared.segment().address() + 4096, space.translate(0x1_0000_1000L, 1).address());
        assertEquals(64 * 1024, space.translate(0, 64 * 1024).byteSize());
    }

    @Test
    void rejectsRangeRunningPastTheEndOfARegion() {
        UnmappedAddressException e = assertThrows(UnmappedAddressException.class,
                () -> space().translate(64 * 1024 - 8, 16));
        assertEquals(64 * 1024 - 8, e.gpa());
        assertEquals("vm1", e.spaceName());
        assertTrue(e.getMessage().contains("0xfff8"), e.getMessage());
        assertTrue(e.getMessage().contains("'vm1'"), e.getMessage());
    }

    @Test
    void rejectsUnmappedAddress() {
        UnmappedAddressException e = assertThrows(UnmappedAddressException.class,
                () -> space().translate(0x8000_0000L, 1));
        assertTrue(e.getMessage().contains("not mapped"), e.getMessage());
    }

    @Test
    void rejectsRangeThatWrapsAround2To64() {
        GuestAddressSpace space = space();
        assertThrows(UnmappedAddressException.class, () -> space.translate(0x100, -1L));
        assertThrows(UnmappedAddressException.class, () -> space.translate(0x1_0000_0000L, Long.MIN_VALUE));
        assertThrows(UnmappedAddressException.class, () -> space.translate(-16, 32));
    }

    @Test
    void rejectsRangeStraddlingTwoAdjacentRegions() {
        try (PrivateMemory next = new PrivateMemory("next", 4096)) {
            GuestAddressSpace space = space();
            space.add(next.region(64 * 1024));
            assertTrue(space.contains(64 * 1024 - 8, 8));
            assertTrue(space.contains(64 * 1024, 8));
            assertFalse(space.contains(64 * 1024 - 8, 16));
        }
    }

    @Test
    void rejectsOverlappingRegions() {
        GuestAddressSpace space = space();
        try (PrivateMemory other = new PrivateMemory("other", 4096)) {
            assertThrows(IllegalArgumentException.class, () -> space.add(other.region(60 * 1024)));
            assertThrows(IllegalArgumentException.class, () -> space.add(other.region(0x1_0000_0000L + 4096)));
        }
    }

    @Test
    void rejectsAccessOfTheWrongKind() {
        GuestAddressSpace space = space();
        assertThrows(UnmappedAddressException.class, () -> space.translate(0x100, 16, RegionKind.SHARED));
        assertEquals(16, space.translate(0x1_0000_0000L, 16, RegionKind.SHARED).byteSize());
    }

    @Test
    void shouldForgetARemovedRegion() {
        GuestAddressSpace space = space();
        MemoryRegion region = space.regionOf(0x1_0000_0000L, 1);
        assertTrue(space.remove(region));
        assertFalse(space.contains(0x1_0000_0000L, 1));
        assertFalse(space.remove(region));
        assertEquals(1, space.regions().size());
    }

    @Test
    void shouldHandleARegionEndingAtTheTopOfTheAddressSpace() {
        GuestAddressSpace space = new GuestAddressSpace("top");
        space.add(new MemoryRegion("top", RegionKind.PRIVATE, -4096L, ram.segment().asSlice(0, 4096)));
        assertEquals(4096, space.translate(-4096L, 4096).byteSize());
        assertEquals(1, space.translate(-1L, 1).byteSize());
        assertThrows(UnmappedAddressException.class, () -> space.translate(-1L, 2));
    }
}
