package dev.airlock.fuzz;

import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.MemoryRegion;
import dev.airlock.memory.RegionKind;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtioFeatures;
import dev.airlock.virtio.VirtioProtocolException;
import dev.airlock.virtio.VirtqAvailLayout;
import dev.airlock.virtio.VirtqueueDevice;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.function.Consumer;

/**
 * A device-side split virtqueue over one shared region whose bytes a fuzz input wrote, laid out as in
 * {@link ChainWalkerFuzzTest}: descriptor table, avail ring, used ring and a data area that
 * descriptors (and indirect tables) may point into. The request-parser targets use it to turn ring
 * bytes plus memory bytes into the chains a hostile driver can make.
 *
 * <p>The ring part of an input, little-endian, short inputs padded with zeros:
 * <pre>
 *  avail idx (u16) | avail ring (u16 x queueSize) | descriptor table (16 x queueSize) | data area (rest)
 * </pre>
 * A descriptor points into the data area with an address from {@link #DATA_GPA}.
 */
final class FuzzQueue implements AutoCloseable {
    static final long REGION_GPA = 0x10_0000L;
    static final int REGION_BYTES = 64 * 1024;
    static final long DESC_OFFSET = 0;
    static final long AVAIL_OFFSET = 0x1000;
    static final long USED_OFFSET = 0x2000;
    static final long DATA_OFFSET = 0x3000;
    /** The guest-physical address of the data area. */
    static final long DATA_GPA = REGION_GPA + DATA_OFFSET;

    private final Arena arena = Arena.ofConfined();
    private final MemorySegment region = arena.allocate(REGION_BYTES, 4096);
    private final VirtqueueDevice device;
    private final int queueSize;

    /**
     * Lays the ring part of {@code input} (from its position on) into a fresh region.
     *
     * @param input     the rest of the fuzz input, consumed
     * @param queueSize a power of two, 1 to 256
     * @param features  the negotiated ring features
     */
    FuzzQueue(ByteBuffer input, int queueSize, long features) {
        this.queueSize = queueSize;
        ByteBuffer in = input.slice().order(ByteOrder.LITTLE_ENDIAN);
        region.set(ValueLayout.JAVA_SHORT_UNALIGNED, AVAIL_OFFSET + VirtqAvailLayout.IDX_OFFSET, u16(in));
        for (int slot = 0; slot < queueSize; slot++) {
            region.set(ValueLayout.JAVA_SHORT_UNALIGNED, AVAIL_OFFSET + VirtqAvailLayout.ringEntryOffset(slot), u16(in));
        }
        copy(in, DESC_OFFSET, 16L * queueSize);
        copy(in, DATA_OFFSET, REGION_BYTES - DATA_OFFSET);
        GuestAddressSpace space = new GuestAddressSpace("fuzz");
        space.add(new MemoryRegion("fuzz", RegionKind.SHARED, REGION_GPA, region));
        device = new VirtqueueDevice("fuzz", space, queueSize, REGION_GPA + DESC_OFFSET, REGION_GPA + AVAIL_OFFSET,
                REGION_GPA + USED_OFFSET, features);
    }

    /**
     * VERSION_1, plus INDIRECT_DESC if bit 0 of {@code shape} is set and EVENT_IDX if bit 1 is.
     *
     * @param shape a byte of the input
     * @return the ring features
     */
    static long ringFeatures(int shape) {
        return VirtioFeatures.of(VirtioFeatures.VIRTIO_F_VERSION_1)
                | ((shape & 0x01) != 0 ? VirtioFeatures.of(VirtioFeatures.VIRTIO_F_INDIRECT_DESC) : 0)
                | ((shape & 0x02) != 0 ? VirtioFeatures.of(VirtioFeatures.VIRTIO_F_EVENT_IDX) : 0);
    }

    private static short u16(ByteBuffer in) {
        if (in.remaining() >= 2) {
            return in.getShort();
        }
        return in.hasRemaining() ? (short) (in.get() & 0xff) : 0;
    }

    private void copy(ByteBuffer in, long offset, long maxBytes) {
        int n = (int) Math.min(in.remaining(), maxBytes);
        MemorySegment.copy(MemorySegment.ofBuffer(in.slice(in.position(), n)), 0, region, offset, n);
        in.position(in.position() + n);
    }

    /**
     * Pops every chain the driver offers (at most queueSize + 1 pops) and hands each to
     * {@code parser}, then returns it to the used ring. Stops at an empty ring or when the walker
     * refuses the ring: that is the chain walker's target, not the parser's.
     *
     * @param parser called with each chain
     * @return how many chains were handed over
     */
    int forEachChain(Consumer<DescriptorChain> parser) {
        int chains = 0;
        for (int i = 0; i <= queueSize; i++) {
            DescriptorChain chain;
            try {
                chain = device.pop();
            } catch (VirtioProtocolException e) {
                return chains;
            }
            if (chain == null) {
                return chains;
            }
            parser.accept(chain);
            chains++;
            device.pushUsed(chain, 0);
        }
        return chains;
    }

    /**
     * Whether {@code s} lies inside the shared region.
     *
     * @param s a segment the parser returned
     * @return whether it does
     */
    boolean contains(MemorySegment s) {
        return s.address() >= region.address() && s.byteSize() >= 0
                && s.address() + s.byteSize() <= region.address() + region.byteSize();
    }

    @Override
    public void close() {
        arena.close();
    }
}
