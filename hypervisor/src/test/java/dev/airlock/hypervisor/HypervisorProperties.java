package dev.airlock.hypervisor;

import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;

import java.util.ArrayDeque;
import java.util.List;

import static dev.airlock.hypervisor.TestSupport.World;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** Queue and doorbell semantics against simple models, over random operation sequences. */
class HypervisorProperties {

    @Property(tries = 100)
    void aQueueBehavesLikeABoundedFifo(@ForAll @Size(max = 200) List<@IntRange(min = 0, max = 2) Integer> ops,
                                       @ForAll @IntRange(min = 2, max = 9) int depth) {
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

    @Provide
    Arbitrary<List<DoorbellOp>> doorbellOps() {
        Arbitrary<DoorbellOp> ring = Arbitraries.longs().filter(f -> f != 0).map(DoorbellOp.Ring::new);
        return Arbitraries.frequencyOf(
                        net.jqwik.api.Tuple.of(4, ring),
                        net.jqwik.api.Tuple.of(2, Arbitraries.just(new DoorbellOp.Read())),
                        net.jqwik.api.Tuple.of(1, Arbitraries.just(new DoorbellOp.Mask())),
                        net.jqwik.api.Tuple.of(1, Arbitraries.just(new DoorbellOp.Unmask())))
                .list().ofMaxSize(100);
    }

    @Property(tries = 100)
    void aDoorbellIsAnOrWordThatReadingClears(@ForAll("doorbellOps") List<DoorbellOp> ops) {
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
