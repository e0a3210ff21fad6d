package dev.airlock.cli.loopback;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * End to end: a driver thread and a device thread over a memfd shared region, every buffer through
 * the bounce DMA ops, 1 GiB of random data each way, checksums equal on both sides.
 */
class LoopbackTest {
    private static final long GIB = 1L << 30;

    @Test
    void shouldMoveOneGibibyteEachWayIntactThroughTheBouncePool() throws Exception {
        Loopback.Report r = Loopback.run(new Loopback.Options(GIB, 64 * 1024, 256, 42));
        assertEquals(GIB, r.bytesToDevice());
        assertEquals(GIB, r.bytesFromDevice());
        assertEquals(GIB / (64 * 1024), r.requests());
        assertEquals(r.driverSentCrc(), r.deviceReceivedCrc(), "driver -> device data corrupted");
        assertEquals(r.deviceSentCrc(), r.driverReceivedCrc(), "device -> driver data corrupted");
        assertTrue(r.intact());
        assertEquals(0, r.pool().usedSlots(), "every slot back in the pool, rings included");
        assertEquals(0, r.pool().failedMappings());
        assertEquals(GIB, r.pool().bytesFromDevice(), "every in buffer bounced back once");
        assertTrue(r.kicks() < r.requests(), "event index suppressed some kicks");
    }

    @Test
    void shouldHandleOddSizesAndATinyQueue() throws Exception {
        Loopback.Report r = Loopback.run(new Loopback.Options(3 * 4096 * 1000 + 8, 4096 * 3, 2, 7));
        assertTrue(r.intact());
        assertEquals(3 * 4096 * 1000 + 8, r.bytesToDevice());
        assertEquals(0, r.pool().usedSlots());
    }
}
