package dev.airlock.transport;

import dev.airlock.hypervisor.InProcessHypervisor;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.Arrays;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The driver side refuses what a hostile device sends: malformed, stale or misaddressed answers, bad headers. */
class HostileDeviceTest {
    private final InProcessHypervisor hypervisor = new InProcessHypervisor();
    private final VmId hostId = hypervisor.createVm(VmSpec.primary("host", 1L << 20));
    private final VmId guestId = hypervisor.createVm(VmSpec.secondary("guest", 1L << 20));
    private final VmContext host = hypervisor.context(hostId);
    private final VmContext guest = hypervisor.context(guestId);
    private final SharedRegionInfo region;
    private final DriverHost driverHost;

    HostileDeviceTest() {
        hypervisor.connectMessageQueues(hostId, guestId, 16);
        hypervisor.connectDoorbells(hostId, guestId);
        region = hypervisor.createSharedRegion(hostId, guestId, "guest.dev0", 1L << 20, 0x1_0000_0000L, 0x8000_0000L);
        hypervisor.startVm(hostId);
        hypervisor.startVm(guestId);
        driverHost = new DriverHost(guest, Duration.ofMillis(300));
    }

    @AfterEach
    void close() {
        driverHost.close();
        hypervisor.close();
    }

    private byte[] nextRequest() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (System.nanoTime() < deadline) {
            Optional<byte[]> m = host.receiveMessage(guestId);
            if (m.isPresent()) {
                return m.get();
            }
            Thread.sleep(1);
        }
        throw new AssertionError("no request from the driver");
    }

    private static byte[] response(int type, int slot, int seq, int status, int value) {
        byte[] bytes = new byte[MmioMessageLayout.RESPONSE_LENGTH];
        MmioMessageLayout.encodeResponse(MemorySegment.ofArray(bytes), new MmioMessageLayout.Response(type, slot, seq, status, value));
        return bytes;
    }

    @Test
    void rejectsMalformedStaleAndMisaddressedResponses() throws Exception {
        DriverTransport t = driverHost.open(TransportKind.MSGQ_MMIO, region.id(), 2);
        CompletableFuture<Integer> generation = CompletableFuture.supplyAsync(t::configGeneration);
        byte[] raw = nextRequest();
        MmioMessageLayout.Request request = MmioMessageLayout.decodeRequest(MemorySegment.ofArray(raw), raw.length, "test");
        assertEquals(MmioRegisters.CONFIG_GENERATION_OFFSET, request.offset());
        assertEquals(2, request.slot());
        int seq = request.seq();
        int read = MmioMessageLayout.TYPE_READ_RESPONSE;
        byte[] good = response(read, 2, seq, TransportStatus.OK, 42);
        byte[] reserved = good.clone();
        reserved[13] = 1;
        byte[][] hostile = {
                new byte[] {(byte) read, 2, (byte) seq},                        // truncated
                Arrays.copyOf(good, 17),                                         // too long
                response(read, 2, seq + 1, TransportStatus.OK, 1),              // stale sequence number
                response(MmioMessageLayout.TYPE_WRITE_RESPONSE, 2, seq, TransportStatus.OK, 2), // answers a write
                response(read, 3, seq, TransportStatus.OK, 3),                  // a slot nobody opened
                response(0x55, 2, seq, TransportStatus.OK, 4),                  // not a response type
                reserved,                                                        // reserved word set
        };
        for (byte[] m : hostile) {
            host.sendMessage(guestId, m);
        }
        host.sendMessage(guestId, good);
        assertEquals(42, generation.get(5, TimeUnit.SECONDS), "only the well-formed answer is taken");
        assertTrue(driverHost.protocolErrors() >= hostile.length - 0, "refused: " + driverHost.protocolErrors());
        assertEquals(0, driverHost.internalErrors());

        // An answer that never comes breaks the transport after the timeout.
        CompletableFuture<Integer> status = CompletableFuture.supplyAsync(t::status);
        nextRequest();
        Exception e = assertThrows(Exception.class, () -> status.get(5, TimeUnit.SECONDS));
        assertTrue(e.getCause() instanceof TransportException, String.valueOf(e.getCause()));
        assertTrue(t.isBroken());
    }

    @Test
    void rejectsAHeaderThatIsNotAVirtioDevice() {
        MemorySegment hostView = host.sharedRegions().getFirst().region().segment();
        DriverTransport t = driverHost.open(TransportKind.SHMEM_DOORBELL, region.id(), 0);
        assertThrows(TransportException.class, t::probe, "no magic");

        hostView.set(ValueLayout.JAVA_INT, ShmemHeaderLayout.MAGIC_OFFSET, ShmemHeaderLayout.MAGIC);
        hostView.set(ValueLayout.JAVA_INT, ShmemHeaderLayout.VERSION_OFFSET, ShmemHeaderLayout.VERSION);
        hostView.set(ValueLayout.JAVA_INT, ShmemHeaderLayout.DEVICE_ID_OFFSET, 3);
        hostView.set(ValueLayout.JAVA_INT, ShmemHeaderLayout.QUEUE_COUNT_OFFSET, 100);
        hostView.set(ValueLayout.JAVA_INT, ShmemHeaderLayout.queueEntryOffset(0) + ShmemHeaderLayout.QUEUE_NUM_MAX_OFFSET, 1000);
        hostView.set(ValueLayout.JAVA_INT, ShmemHeaderLayout.CONFIG_SIZE_OFFSET, -5);
        assertEquals(3, t.probe());
        assertEquals(0, t.queueNumMax(0), "a QueueNumMax that is not a power of two reads as no queue");
        assertEquals(0, t.queueNumMax(9), "beyond the queues a header can describe");
        assertThrows(TransportException.class, () -> t.readConfig(0, 4), "a negative config size");

        hostView.set(ValueLayout.JAVA_INT, ShmemHeaderLayout.CONFIG_GENERATION_OFFSET, 1); // stuck mid-update
        assertThrows(TransportException.class, t::configGeneration);
        assertTrue(t.isBroken());
        assertEquals(0, driverHost.internalErrors());
    }
}
