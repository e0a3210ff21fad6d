package dev.airlock.vhostuser;

import dev.airlock.devices.blk.BlkDeviceFailedException;
import dev.airlock.devices.blk.BlockDevice;
import dev.airlock.devices.blk.BlockDeviceOptions;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.vhostuser.HostileRingBackend.Misbehaviour;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link VhostUserDriverTransport} with Airlock's {@link VirtioFrontend} and {@link BlockDevice}
 * against a backend that gets the protocol right and the used ring wrong
 * ({@link HostileRingBackend}): each bad used entry must break the queue, fail the request with the
 * fault named, and leave private RAM outside the request's buffer alone, without hanging.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class VhostUserFrontendHostileRingTest {
    /** The canary: 4 MiB of private RAM after the block device's I/O area. */
    private static final long CANARY_GPA = FrontendVm.BUFFERS_GPA;
    private static final long CANARY_BYTES = 4L << 20;
    /** The read's buffer, in the middle of the canary area. */
    private static final long BUFFER_GPA = CANARY_GPA + (1L << 20);
    private static final int BUFFER_BYTES = 4096;
    /** The virtqueue size the block device asks for (the transport allows up to 1024). */
    private static final int QUEUE_SIZE = 256;
    private static final BlockDeviceOptions OPTIONS = BlockDeviceOptions.of(FrontendVm.RAM_GPA, FrontendVm.IO_AREA_BYTES)
            .withQueueSize(QUEUE_SIZE);

    @TempDir
    Path dir;

    private static FrontendVm vm(Path socket) throws IOException {
        return new FrontendVm(socket, Duration.ofMillis(500), Duration.ZERO, OPTIONS);
    }

    /** What the fault message must say for each misbehaviour (VirtqueueDriver's wording). */
    private static String[] expectedFault(Misbehaviour m) {
        return switch (m) {
            case NONE -> throw new IllegalArgumentException("NONE is the control case");
            case BAD_ID -> new String[] {"].id = " + (QUEUE_SIZE + 3), ">= queue size " + QUEUE_SIZE};
            case NOT_IN_FLIGHT_ID -> new String[] {"].id = ", "not the head of a chain in flight"};
            case TOO_LONG -> new String[] {"].len = " + HostileRingBackend.TOO_LONG_LENGTH, "device-writable bytes of chain"};
            case USED_IDX_JUMP -> new String[] {"used.idx = " + (QUEUE_SIZE + 1), "chains are in flight"};
        };
    }

    /** The control: the same backend with a correct used entry completes the read, so the rejections below are the entries'. */
    @Test
    void shouldCompleteAReadWhenTheUsedEntryIsCorrect() throws Exception {
        Path socket = dir.resolve("well-behaved-ring.sock");
        try (HostileRingBackend backend = new HostileRingBackend(socket, Misbehaviour.NONE);
             FrontendVm vm = vm(socket)) {
            vm.blk.readAsync(0, BUFFER_GPA, BUFFER_BYTES).get(10, TimeUnit.SECONDS);
            byte[] scribbled = new byte[BUFFER_BYTES];
            Arrays.fill(scribbled, HostileRingBackend.SCRIBBLE);
            assertArrayEquals(scribbled, vm.ram(BUFFER_GPA, BUFFER_BYTES).toArray(ValueLayout.JAVA_BYTE));
            assertFalse(vm.blk.isFailed());
            assertEquals(1, backend.misbehaviours());
        }
    }

    /**
     * Each spoiled used entry breaks queue 0; under the default RECOVER policy the device is reset
     * and the read resubmitted until the recoveries run out, then the read fails with the fault.
     */
    @ParameterizedTest(name = "{0}")
    @EnumSource(value = Misbehaviour.class, mode = EnumSource.Mode.EXCLUDE, names = "NONE")
    void rejectsHostileUsedEntry(Misbehaviour misbehaviour) throws Exception {
        Path socket = dir.resolve("hostile-ring.sock");
        try (HostileRingBackend backend = new HostileRingBackend(socket, misbehaviour);
             FrontendVm vm = vm(socket)) {
            assertEquals(HostileRingBackend.CAPACITY_SECTORS, vm.blk.capacitySectors());
            MemorySegment canary = vm.ram(CANARY_GPA, CANARY_BYTES);
            byte[] pattern = new byte[(int) CANARY_BYTES];
            new Random(misbehaviour.ordinal()).nextBytes(pattern);
            MemorySegment.copy(pattern, 0, canary, ValueLayout.JAVA_BYTE, 0, pattern.length);

            CompletableFuture<Void> read = vm.blk.readAsync(0, BUFFER_GPA, BUFFER_BYTES);
            ExecutionException e = assertThrows(ExecutionException.class, () -> read.get(10, TimeUnit.SECONDS),
                    () -> "the read did not fail; backend: " + backend.failure());

            assertInstanceOf(BlkDeviceFailedException.class, e.getCause());
            String message = e.getCause().getMessage();
            assertTrue(message.contains("queue 0 broken"), message);
            for (String part : expectedFault(misbehaviour)) {
                assertTrue(message.contains(part), () -> "'" + part + "' missing from: " + message);
            }
            assertTrue(vm.blk.isFailed());
            assertNull(backend.failure(), "the backend itself failed");
            // The default RECOVER policy reset the device and resubmitted each time; the backend spoiled
            // every attempt, so the driver gave up after maxRecoveries resets in a row.
            assertEquals(OPTIONS.maxRecoveries(), vm.blk.recoveries());
            assertEquals(OPTIONS.maxRecoveries() + 1, backend.misbehaviours());
            // The messages were fine: the failure is the queue's, not the transport's.
            assertFalse(vm.transport.isBroken(), vm.transport.brokenReason());

            assertCanaryIntact(canary, pattern);
            // A failed device fails later requests at once rather than queueing them.
            assertThrows(IOException.class, () -> vm.blk.read(0, BUFFER_GPA, BUFFER_BYTES));
            assertCanaryIntact(canary, pattern);
        }
    }

    /** Every byte of the canary area outside the read's buffer is as written. */
    private static void assertCanaryIntact(MemorySegment canary, byte[] pattern) {
        MemorySegment expected = MemorySegment.ofArray(pattern);
        long bufferOffset = BUFFER_GPA - CANARY_GPA;
        long before = canary.asSlice(0, bufferOffset).mismatch(expected.asSlice(0, bufferOffset));
        assertEquals(-1, before, "private RAM changed at gpa 0x" + Long.toHexString(CANARY_GPA + before));
        long afterOffset = bufferOffset + BUFFER_BYTES;
        long after = canary.asSlice(afterOffset).mismatch(expected.asSlice(afterOffset));
        assertEquals(-1, after, "private RAM changed at gpa 0x" + Long.toHexString(CANARY_GPA + afterOffset + after));
    }
}
