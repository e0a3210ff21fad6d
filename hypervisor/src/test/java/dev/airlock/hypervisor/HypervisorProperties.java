package dev.airlock.hypervisor;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.LongStream;

import static dev.airlock.hypervisor.TestSupport.World;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * Queue and doorbell semantics against simple models, over random operation sequences. One case per
 * seed; {@code -Dairlock.seed=N} reruns one case, {@code -Dairlock.tries=N} runs more.
 */
class HypervisorProperties {

    static LongStream seeds() {
        Long only = Long.getLong("airlock.seed");
        return only != null ? LongStream.of(only) : LongStream.range(0, Integer.getInteger("airlock.tries", 100));
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void aQueueBehavesLikeABoundedFifo(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int depth = r.nextInt(2, 10);
        int[] ops = r.ints(r.nextInt(201), 0, 3).toArray();
        try (World world = new World(HypervisorConfig.DEFAULT, depth).started()) {
            ArrayDeque<Integer> model = new ArrayDeque<>();
            int next = 0;
            for (int op : ops) {
                if (op < 2) { // sends twice as often as receives: the queue fills
                    SendResult result = world.guest1.sendMessage(world.hostId, new byte[] {(byte) next, (byte) (next >> 8)});
                    if (model.size() < depth) {
                        assertEquals(SendResult.OK, result);
                        model.add(next);
                    } else {
                        assertEquals(SendResult.FULL, result);
                    }
                    next++;
                } else {
                    byte[] got = world.host.receiveMessage(world.guest1Id).orElse(null);
                    Integer expected = model.poll();
                    if (expected == null) {
                        assertNull(got);
                    } else {
                        assertArrayEquals(new byte[] {(byte) (int) expected, (byte) (expected >> 8)}, got);
                    }
                }
            }
        }
    }

    sealed interface DoorbellOp {
        record Ring(long flags) implements DoorbellOp { }
        record Read() implements DoorbellOp { }
        record Mask() implements DoorbellOp { }
        record Unmask() implements DoorbellOp { }
    }

    /** Up to 100 operations: ring 4 : read 2 : mask 1 : unmask 1; ring flags are non-zero, often one bit. */
    private static List<DoorbellOp> doorbellOps(SplittableRandom r) {
        int count = r.nextInt(101);
        List<DoorbellOp> ops = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            int pick = r.nextInt(8);
            ops.add(pick < 4 ? new DoorbellOp.Ring(ringFlags(r))
                    : pick < 6 ? new DoorbellOp.Read() : pick == 6 ? new DoorbellOp.Mask() : new DoorbellOp.Unmask());
        }
        return ops;
    }

    private static long ringFlags(SplittableRandom r) {
        long flags = r.nextBoolean() ? 1L << r.nextInt(64) : r.nextLong();
        return flags != 0 ? flags : 1;
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void aDoorbellIsAnOrWordThatReadingClears(long seed) {
        List<DoorbellOp> ops = doorbellOps(new SplittableRandom(seed));
        try (World world = new World().started()) {
            long model = 0;
            for (DoorbellOp op : ops) {
                switch (op) {
                    case DoorbellOp.Ring ring -> {
                        world.guest1.ringDoorbell(world.hostId, ring.flags());
                        model |= ring.flags();
                    }
                    case DoorbellOp.Read read -> {
                        assertEquals(model, world.host.readAndClearDoorbell(world.guest1Id));
                        model = 0;
                    }
                    case DoorbellOp.Mask mask -> world.host.maskDoorbell(world.guest1Id);
                    case DoorbellOp.Unmask unmask -> world.host.unmaskDoorbell(world.guest1Id);
                }
            }
            assertEquals(model, world.host.readAndClearDoorbell(world.guest1Id));
        }
    }
}
