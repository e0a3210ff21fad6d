package dev.airlock.vhostuser;

import dev.airlock.devices.blk.BlkConfigLayout;
import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.devices.blk.BlockDevice;
import dev.airlock.devices.blk.BlockDeviceOptions;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.PrivateMemory;
import dev.airlock.memory.SharedMemory;
import dev.airlock.transport.VirtioFrontend;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.time.Duration;

/**
 * A VM of one block device over vhost-user, as the frontend tests use it: private RAM (the block
 * device's I/O area, then buffers for asynchronous requests) and one shared region (the rings and
 * the bounce pool), the only memory the backend is given.
 */
final class FrontendVm implements AutoCloseable {
    /** struct virtio_blk_config up to write_zeroes_may_unmap and its padding (QEMU 7.2). */
    static final int BLK_CONFIG_LENGTH = BlkConfigLayout.CONFIG_LENGTH;
    static final long RAM_GPA = 0;
    static final long RAM_BYTES = 32L << 20;
    /** The block device's I/O area: the first half of RAM. */
    static final long IO_AREA_BYTES = 16L << 20;
    /** The second half of RAM: buffers of asynchronous requests. */
    static final long BUFFERS_GPA = RAM_GPA + IO_AREA_BYTES;
    static final long BUFFERS_BYTES = RAM_BYTES - IO_AREA_BYTES;
    static final long SHARED_GPA = 0x4000_0000L;
    static final long SHARED_BYTES = 16L << 20;

    final PrivateMemory ram = new PrivateMemory("ram", RAM_BYTES);
    final SharedMemory shared = SharedMemory.create("vu-shared", SHARED_BYTES);
    final GuestAddressSpace space = new GuestAddressSpace("vu-frontend");
    final VhostUserDriverTransport transport;
    final VirtioFrontend frontend;
    final BlockDevice blk;

    /** Connects without reconnecting; the block device's default options. */
    FrontendVm(Path socket) throws IOException {
        this(socket, Duration.ZERO, 64);
    }

    /**
     * Connects.
     *
     * @param reconnectFor how long the transport tries to reconnect after losing the backend
     * @param queueDepth   the block device's queue depth
     */
    FrontendVm(Path socket, Duration reconnectFor, int queueDepth) throws IOException {
        this(socket, Duration.ofSeconds(5), reconnectFor, BlockDeviceOptions.of(RAM_GPA, IO_AREA_BYTES).withQueueDepth(queueDepth));
    }

    /**
     * Connects.
     *
     * @param timeout      the transport's reply timeout
     * @param reconnectFor how long the transport tries to reconnect after losing the backend
     * @param options      the block device's options (the I/O area within the first {@link #IO_AREA_BYTES} of RAM)
     */
    FrontendVm(Path socket, Duration timeout, Duration reconnectFor, BlockDeviceOptions options) throws IOException {
        space.add(ram.region(RAM_GPA));
        space.add(shared.region(SHARED_GPA));
        transport = VhostUserDriverTransport.connect(socket, BlkDevice.DEVICE_ID, BLK_CONFIG_LENGTH, shared, SHARED_GPA,
                timeout, reconnectFor);
        frontend = new VirtioFrontend(transport, space);
        blk = BlockDevice.open(frontend, space, options);
    }

    /** Private RAM at {@code gpa}. */
    MemorySegment ram(long gpa, long lengthBytes) {
        return ram.segment().asSlice(gpa - RAM_GPA, lengthBytes);
    }

    @Override
    public void close() {
        blk.close();
        frontend.close();
        shared.close();
        ram.close();
    }
}
