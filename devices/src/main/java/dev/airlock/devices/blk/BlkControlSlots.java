package dev.airlock.devices.blk;

import dev.airlock.dma.CoherentBuffer;
import dev.airlock.virtio.ScatterGather;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static dev.airlock.devices.blk.BlockDeviceOptions.CONTROL_SLOT_BYTES;

/**
 * The control slots of a {@link BlockDevice}, one per request in a virtqueue, and the requests that
 * hold them. A slot holds what a request needs besides its data:
 *
 * <pre>
 *   0               16    17              32                              64
 *   +---------------+-----+---------------+-------------------------------+
 *   | header (16 B) | st. |   (unused)    | segment (16 B) or id (20 B)   |
 *   +---------------+-----+---------------+-------------------------------+
 * </pre>
 * The slots live in a coherent buffer from the frontend's DMA ops, that is in the shared region
 * itself, and go into the chain premapped: only the data is bounced, one pool mapping per data
 * buffer instead of three per request (Linux's virtio-blk gets the same from a coherent or
 * unencrypted allocation). The device may read and write a slot while its request is in flight,
 * so the driver writes a slot before publishing the request and reads the status (and id) once,
 * after it took the used entry. Used by the driver thread only.
 */
final class BlkControlSlots {
    private static final int STATUS_OFFSET = 16;
    private static final int PAYLOAD_OFFSET = 32;
    /** Written into the status before a request is sent: not a status a device may write. */
    private static final byte NO_STATUS = (byte) 0xff;

    private final MemorySegment control;
    private final long controlDmaAddr;
    private final BlkDriverRequest[] holder;
    private final int[] free;
    private int freeCount;

    BlkControlSlots(CoherentBuffer control, int count) {
        if (control.segment().byteSize() < (long) count * CONTROL_SLOT_BYTES) {
            throw new IllegalArgumentException("a control area of " + control.segment().byteSize() + " bytes for " + count + " slots");
        }
        this.control = control.segment();
        this.controlDmaAddr = control.dmaAddr();
        this.holder = new BlkDriverRequest[count];
        this.free = new int[count];
        clear();
    }

    /** Slots in use. */
    int inUse() {
        return holder.length - freeCount;
    }

    boolean full() {
        return freeCount == 0;
    }

    /**
     * Takes a slot for {@code r}, writes its header, status and segment, and fills {@code sg} with
     * the whole request: header, segment or data, id buffer, status.
     *
     * @return the slot; give it back with {@link #release} if the request is not added
     */
    int take(BlkDriverRequest r, ScatterGather sg) {
        int slot = free[--freeCount];
        MemorySegment s = slot(slot);
        BlkRequestLayout.writeHeader(s, r.type, r.hasSegment() ? 0 : r.sector); // all 16 bytes, reserved included
        s.set(ValueLayout.JAVA_BYTE, STATUS_OFFSET, NO_STATUS);
        if (r.hasSegment()) {
            BlkRequestLayout.writeSegment(s.asSlice(PAYLOAD_OFFSET), r.sector, (int) r.numSectors, r.segmentFlags);
        }
        long dma = controlDmaAddr + (long) slot * CONTROL_SLOT_BYTES;
        sg.clear().outMapped(dma, BlkRequestLayout.HEADER_LENGTH);
        if (r.hasSegment()) {
            sg.outMapped(dma + PAYLOAD_OFFSET, BlkRequestLayout.SEGMENT_LENGTH);
        }
        for (int i = 0; i < r.gpas.length; i++) {
            if (r.writesToDevice()) {
                sg.out(r.gpas[i], r.lengths[i]);
            } else {
                sg.in(r.gpas[i], r.lengths[i]);
            }
        }
        if (r.type == BlkRequestLayout.VIRTIO_BLK_T_GET_ID) {
            s.asSlice(PAYLOAD_OFFSET, BlkRequestLayout.VIRTIO_BLK_ID_BYTES).fill((byte) 0); // a shorter id reads as zeros
            sg.inMapped(dma + PAYLOAD_OFFSET, BlkRequestLayout.VIRTIO_BLK_ID_BYTES);
        }
        sg.inMapped(dma + STATUS_OFFSET, BlkRequestLayout.STATUS_LENGTH);
        return slot;
    }

    /** The request was added to a virtqueue: it holds the slot until {@link #complete}. */
    void hold(int slot, BlkDriverRequest r) {
        holder[slot] = r;
        r.slot = slot;
    }

    /** Gives back a slot whose request was not added. */
    void release(int slot) {
        free[freeCount++] = slot;
    }

    /**
     * The device used the request: reads its status (and id), frees the slot.
     *
     * @return the status byte the device wrote (0xff if it wrote none)
     */
    int complete(BlkDriverRequest r) {
        int slot = r.slot;
        MemorySegment s = slot(slot);
        int status = s.get(ValueLayout.JAVA_BYTE, STATUS_OFFSET) & 0xff; // read once: the device may still write it
        if (r.type == BlkRequestLayout.VIRTIO_BLK_T_GET_ID) {
            r.id = s.asSlice(PAYLOAD_OFFSET, BlkRequestLayout.VIRTIO_BLK_ID_BYTES).toArray(ValueLayout.JAVA_BYTE);
        }
        holder[slot] = null;
        r.slot = -1;
        release(slot);
        return status;
    }

    /** Frees every slot; returns the requests that held one. */
    List<BlkDriverRequest> clear() {
        List<BlkDriverRequest> held = new ArrayList<>();
        for (BlkDriverRequest r : holder) {
            if (r != null) {
                r.slot = -1;
                held.add(r);
            }
        }
        Arrays.fill(holder, null);
        for (int i = 0; i < free.length; i++) {
            free[i] = free.length - 1 - i;
        }
        freeCount = free.length;
        return held;
    }

    private MemorySegment slot(int slot) {
        return control.asSlice((long) slot * CONTROL_SLOT_BYTES, CONTROL_SLOT_BYTES);
    }
}
