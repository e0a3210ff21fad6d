package dev.airlock.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.airlock.devices.rng.RngDevice;
import dev.airlock.hypervisor.InProcessHypervisor;
import dev.airlock.hypervisor.SendResult;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmContext;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.VmState;
import dev.airlock.transport.DeviceHost;
import dev.airlock.transport.MmioMessageLayout;
import dev.airlock.transport.MmioRegisters;
import dev.airlock.transport.TransportKind;
import dev.airlock.transport.TransportStatus;
import dev.airlock.virtio.VirtioProtocolException;
import org.junit.jupiter.api.AfterAll;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The msgq-mmio message decoder, alone and behind a device host, against any bytes a hostile
 * secondary can put on its message queue.
 */
class MmioMessageFuzzTest {
    private static final long ANSWER_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(10);
    /** Slots 0 and 1 hold an entropy device each; the others are empty. */
    private static final int DEVICES = 2;
    private static final int PROBE_SEQ = 0xbeef;
    private static World world;

    /**
     * Decoding either message type yields a record that encodes back to exactly the bytes received
     * (every field is captured, reserved bits are zero) and obeys the diagram's rules, or a
     * {@link VirtioProtocolException} with a fault record; never anything else.
     * {@link MmioMessageLayout#peekSlotAndSeq} addresses every message of at least 4 bytes.
     */
    @FuzzTest(maxDuration = "60s")
    void decodeIsExactOrRefused(byte[] message) {
        // The device host decodes from a receive buffer of at least 16 bytes, whatever the length.
        MemorySegment src = MemorySegment.ofArray(Arrays.copyOf(message, Math.max(message.length, MmioMessageLayout.REQUEST_LENGTH)));
        try {
            MmioMessageLayout.Request r = MmioMessageLayout.decodeRequest(src, message.length, "fuzz");
            assertEquals(MmioMessageLayout.REQUEST_LENGTH, message.length);
            assertTrue(r.type() == MmioMessageLayout.TYPE_READ || r.type() == MmioMessageLayout.TYPE_WRITE, "type " + r.type());
            assertTrue(r.sizeBytes() == 1 || r.sizeBytes() == 2 || r.sizeBytes() == 4, "size " + r.sizeBytes());
            assertEquals(0, r.offset() & (r.sizeBytes() - 1), "offset aligned to the size");
            assertTrue(r.isWrite() || r.value() == 0, "a read carries no value");
            assertTrue(r.slot() >= 0 && r.slot() <= 0xff && r.seq() >= 0 && r.seq() <= 0xffff);
            byte[] again = new byte[MmioMessageLayout.REQUEST_LENGTH];
            MmioMessageLayout.encodeRequest(MemorySegment.ofArray(again), r);
            assertArrayEquals(message, again, "a request re-encodes to the bytes received");
        } catch (VirtioProtocolException e) {
            assertNotNull(e.fault(), "a refusal carries a fault record");
        }
        try {
            MmioMessageLayout.Response r = MmioMessageLayout.decodeResponse(src, message.length, "fuzz");
            assertEquals(MmioMessageLayout.RESPONSE_LENGTH, message.length);
            assertTrue(r.type() == MmioMessageLayout.TYPE_READ_RESPONSE || r.type() == MmioMessageLayout.TYPE_WRITE_RESPONSE);
            byte[] again = new byte[MmioMessageLayout.RESPONSE_LENGTH];
            MmioMessageLayout.encodeResponse(MemorySegment.ofArray(again), r);
            assertArrayEquals(message, again, "a response re-encodes to the bytes received");
        } catch (VirtioProtocolException e) {
            assertNotNull(e.fault(), "a refusal carries a fault record");
        }
        int slotAndSeq = MmioMessageLayout.peekSlotAndSeq(src, message.length);
        if (message.length < 4) {
            assertEquals(-1, slotAndSeq);
        } else {
            assertEquals((message[1] & 0xff) << 16 | (message[2] & 0xff) | (message[3] & 0xff) << 8, slotAndSeq);
        }
    }

    /**
     * A sequence of raw messages from a hostile secondary to a device host serving two entropy
     * devices over msgq-mmio (the device is reset first). Each message of at least 4 bytes gets
     * exactly one well-formed answer addressed to its slot and sequence number: MALFORMED when the
     * decoder refuses it, NO_SUCH_SLOT for an empty slot, else the register file's status. Shorter
     * messages get none. Afterwards the host is alive, still answers, and caught no unexpected
     * exception.
     *
     * <pre>
     *  input: a sequence of (length byte L, then the message's bytes), L = 0 meaning 16 bytes;
     *         a message longer than the rest of the input is padded with zeros
     * </pre>
     */
    @FuzzTest(maxDuration = "60s")
    void deviceHostAnswersEveryMessage(byte[] input) {
        World w = world();
        w.drain();
        assertEquals(TransportStatus.OK, w.exchange(request(MmioMessageLayout.TYPE_WRITE, 0, 0, MmioRegisters.STATUS_OFFSET, 0)).status(),
                "reset slot 0");
        assertEquals(TransportStatus.OK, w.exchange(request(MmioMessageLayout.TYPE_WRITE, 1, 0, MmioRegisters.STATUS_OFFSET, 0)).status(),
                "reset slot 1");
        int at = 0;
        while (at < input.length) {
            int length = input[at++] & 0xff;
            length = length == 0 ? MmioMessageLayout.REQUEST_LENGTH : Math.min(length, w.guest.maxMessageBytes());
            byte[] message = Arrays.copyOfRange(input, at, at + length);
            at += length;
            if (length < 4) {
                w.send(message);
                continue;
            }
            checkAnswer(message, w.exchange(message));
        }
        MmioMessageLayout.Response probe = w.exchange(request(MmioMessageLayout.TYPE_READ, 0, PROBE_SEQ, MmioRegisters.MAGIC_VALUE_OFFSET, 0));
        assertEquals(PROBE_SEQ, probe.seq(), "the next answer is the probe's: nothing answered the short messages");
        assertEquals(TransportStatus.OK, probe.status());
        assertEquals(MmioRegisters.MAGIC_VALUE, probe.value(), "the device still answers");
        assertEquals(0, w.deviceHost.internalErrors(), "no unexpected exception in the device host");
        assertEquals(VmState.RUNNING, w.hypervisor.vmInfo(w.hostId).state(), "the primary is alive");
    }

    private static void checkAnswer(byte[] message, MmioMessageLayout.Response answer) {
        assertEquals(message[1] & 0xff, answer.slot(), "answer addressed to the slot");
        assertEquals((message[2] & 0xff) | (message[3] & 0xff) << 8, answer.seq(), "answer carries the sequence number");
        assertEquals(message[0] == MmioMessageLayout.TYPE_WRITE ? MmioMessageLayout.TYPE_WRITE_RESPONSE
                : MmioMessageLayout.TYPE_READ_RESPONSE, answer.type(), "a write is answered as a write, anything else as a read");
        assertTrue(answer.status() >= TransportStatus.OK && answer.status() <= TransportStatus.MALFORMED, "status " + answer.status());
        MmioMessageLayout.Request request;
        try {
            request = MmioMessageLayout.decodeRequest(MemorySegment.ofArray(Arrays.copyOf(message, Math.max(message.length, 16))),
                    message.length, "fuzz");
        } catch (VirtioProtocolException e) {
            assertEquals(TransportStatus.MALFORMED, answer.status(), "a malformed message is answered MALFORMED");
            assertEquals(0, answer.value());
            return;
        }
        if (request.slot() >= DEVICES) {
            assertEquals(TransportStatus.NO_SUCH_SLOT, answer.status(), "an empty slot");
        } else {
            assertTrue(answer.status() != TransportStatus.MALFORMED && answer.status() != TransportStatus.NO_SUCH_SLOT,
                    "a well-formed request to a device: " + answer);
        }
        if (answer.status() != TransportStatus.OK || request.isWrite()) {
            assertEquals(0, answer.value(), "a refused access or a write reads as 0");
        }
    }

    private static byte[] request(int type, int slot, int seq, int offset, int value) {
        byte[] bytes = new byte[MmioMessageLayout.REQUEST_LENGTH];
        MmioMessageLayout.encodeRequest(MemorySegment.ofArray(bytes), new MmioMessageLayout.Request(type, slot, seq, offset, 4, value));
        return bytes;
    }

    private static synchronized World world() {
        if (world == null) {
            world = new World();
        }
        return world;
    }

    @AfterAll
    static synchronized void closeWorld() {
        if (world != null) {
            world.close();
            world = null;
        }
    }

    /** A primary with a device host serving two entropy devices to one secondary, on the in-process runtime. */
    private static final class World implements AutoCloseable {
        final InProcessHypervisor hypervisor = new InProcessHypervisor();
        final VmId hostId = hypervisor.createVm(VmSpec.primary("host", 1L << 20));
        final VmId guestId = hypervisor.createVm(VmSpec.secondary("guest", 1L << 20));
        final VmContext guest = hypervisor.context(guestId);
        final DeviceHost deviceHost = new DeviceHost(hypervisor.context(hostId));
        private final RngDevice[] devices = new RngDevice[DEVICES];
        private final MemorySegment answer = MemorySegment.ofArray(new byte[guest.maxMessageBytes()]);

        World() {
            hypervisor.startVm(hostId);
            hypervisor.connectMessageQueues(hostId, guestId, 64);
            hypervisor.connectDoorbells(hostId, guestId);
            hypervisor.startVm(guestId);
            for (int slot = 0; slot < DEVICES; slot++) {
                SharedRegionInfo region = hypervisor.createSharedRegion(hostId, guestId, "rng" + slot, 64 * 1024,
                        0x1_0000_0000L + slot * 0x10_0000L, 0x8000_0000L + slot * 0x10_0000L);
                devices[slot] = new RngDevice();
                deviceHost.addDevice(TransportKind.MSGQ_MMIO, region, slot, devices[slot]);
            }
        }

        /** Sends a message; short ones get no answer, so a run of them may fill the queue until the host drains it. */
        void send(byte[] message) {
            long deadline = System.nanoTime() + ANSWER_TIMEOUT_NS;
            while (guest.sendMessage(hostId, message) == SendResult.FULL) {
                if (System.nanoTime() > deadline) {
                    fail("the device host stopped draining its message queue");
                }
                Thread.onSpinWait();
            }
        }

        /** Sends a message and returns the answer, decoded and checked for form. */
        MmioMessageLayout.Response exchange(byte[] message) {
            send(message);
            long deadline = System.nanoTime() + ANSWER_TIMEOUT_NS;
            int length;
            while ((length = guest.receiveMessage(hostId, answer)) == VmContext.EMPTY) {
                if (System.nanoTime() > deadline) {
                    fail("no answer to " + Arrays.toString(message));
                }
                Thread.onSpinWait();
            }
            try {
                return MmioMessageLayout.decodeResponse(answer, length, "fuzz.host");
            } catch (VirtioProtocolException e) {
                throw new AssertionError("the device host sent a malformed answer: " + e.getMessage(), e);
            }
        }

        void drain() {
            while (guest.receiveMessage(hostId, answer) != VmContext.EMPTY) {
                // answers left over from an input that failed half-way
            }
        }

        @Override
        public void close() {
            try {
                deviceHost.close();
                for (RngDevice d : devices) {
                    d.close();
                }
            } finally {
                hypervisor.close();
            }
        }
    }
}
