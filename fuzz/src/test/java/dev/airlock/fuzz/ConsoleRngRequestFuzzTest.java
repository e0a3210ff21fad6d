package dev.airlock.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.airlock.devices.console.ConsoleRequest;
import dev.airlock.devices.rng.RngRequest;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioProtocolException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The virtio-console and virtio-rng request parsers against whatever chains a hostile driver can
 * offer: a small device shape, then ring bytes plus memory bytes as {@link FuzzQueue} lays them out.
 *
 * <pre>
 *  header (then the ring part of FuzzQueue):
 *  [0]     bit 0 INDIRECT_DESC, bit 1 EVENT_IDX, bit 2 console: transmitq (else receiveq)
 *  [1]     log2 queue size (mod 9)
 *  [2..5]  rng only: the most bytes per request (le32, low 31 bits, at least 1)
 * </pre>
 */
class ConsoleRngRequestFuzzTest {

    /**
     * A receiveq chain is accepted exactly when it is device-writable only, a transmitq chain
     * exactly when it is device-readable only; the answer is the chain's length in that direction
     * (possibly 0: zero-length descriptors are legal);
     * a refusal is a {@link VirtioProtocolException} that names the queue, never anything else.
     */
    @FuzzTest(maxDuration = "60s")
    void consoleRequestKeepsItsDirection(byte[] input) {
        ByteBuffer in = header(input, 2);
        int shape = in.get() & 0xff;
        int queueSize = 1 << ((in.get() & 0xff) % 9);
        boolean transmit = (shape & 0x04) != 0;
        try (FuzzQueue queue = new FuzzQueue(in, queueSize, features(shape))) {
            queue.forEachChain(chain -> {
                boolean valid = transmit ? chain.writableCount() == 0 : chain.readableCount() == 0;
                try {
                    long bytes = transmit ? ConsoleRequest.parseTransmit(chain, "fuzz.transmitq")
                            : ConsoleRequest.parseReceive(chain, "fuzz.receiveq");
                    assertTrue(valid, "accepted a chain with buffers in the wrong direction: " + chain);
                    assertEquals(transmit ? chain.readableBytes() : chain.writableBytes(), bytes);
                    // Zero-length descriptors are legal, so an empty buffer is too (the device completes it with 0).
                    assertTrue(bytes >= 0 && bytes < (1L << 32), "length " + bytes);
                } catch (VirtioProtocolException e) {
                    assertTrue(!valid, "refused a valid chain: " + e.getMessage());
                    assertFault(e, transmit ? "fuzz.transmitq" : "fuzz.receiveq");
                }
            });
        }
    }

    /**
     * A requestq chain is accepted exactly when it is device-writable only; the request asks for
     * its writable length capped at the limit (0 for a chain of zero-length descriptors).
     */
    @FuzzTest(maxDuration = "60s")
    void rngRequestIsWritableOnlyAndCapped(byte[] input) {
        ByteBuffer in = header(input, 6);
        int shape = in.get() & 0xff;
        int queueSize = 1 << ((in.get() & 0xff) % 9);
        int maxRequestBytes = Math.max(1, in.getInt() & Integer.MAX_VALUE);
        try (FuzzQueue queue = new FuzzQueue(in, queueSize, features(shape))) {
            queue.forEachChain(chain -> checkRng(chain, maxRequestBytes));
        }
    }

    private static void checkRng(DescriptorChain chain, int maxRequestBytes) {
        boolean valid = chain.readableCount() == 0;
        RngRequest request;
        try {
            request = RngRequest.parse(chain, maxRequestBytes, "fuzz.requestq");
        } catch (VirtioProtocolException e) {
            assertTrue(!valid, "refused a valid chain: " + e.getMessage());
            assertFault(e, "fuzz.requestq");
            return;
        }
        assertTrue(valid, "accepted a chain with device-readable buffers: " + chain);
        assertEquals(Math.min(chain.writableBytes(), maxRequestBytes), request.lengthBytes());
        assertTrue(request.lengthBytes() >= 0 && request.lengthBytes() <= maxRequestBytes, "length " + request.lengthBytes());
    }

    private static void assertFault(VirtioProtocolException e, String source) {
        assertNotNull(e.fault(), "a refusal carries a fault record");
        assertEquals(source, e.fault().source(), "the fault names the queue");
    }

    private static ByteBuffer header(byte[] input, int headerBytes) {
        return ByteBuffer.wrap(input.length >= headerBytes ? input : Arrays.copyOf(input, headerBytes)).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static long features(int shape) {
        return FuzzQueue.ringFeatures(shape);
    }
}
