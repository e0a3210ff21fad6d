/**
 * virtio-blk (VIRTIO 1.2 §5.2): backend, frontend driver, request parser and configuration layout.
 *
 * <p><b>Backend</b> (in the primary): {@link dev.airlock.devices.blk.BlkDevice}, opened with
 * {@link dev.airlock.devices.blk.BlkDevice#open} from {@link dev.airlock.devices.blk.BlkOptions} and
 * served with {@code DeviceHost.addDevice}. One worker thread per queue does positional file I/O
 * straight between the image and the shared region; {@link dev.airlock.devices.blk.BlkRequestParser}
 * checks every request first; {@link dev.airlock.devices.blk.BlkMetrics} counts them. The image is
 * locked ({@code flock}) so two backends cannot serve it read-write.
 *
 * <p><b>Frontend</b> (in a secondary): {@link dev.airlock.devices.blk.BlockDevice}, opened with
 * {@link dev.airlock.devices.blk.BlockDevice#open} over a {@code VirtioFrontend}, with
 * {@link dev.airlock.devices.blk.BlockDeviceOptions} (an I/O area in private RAM, queue depth,
 * failure policy). Asynchronous and blocking reads, writes, flushes, discards and write-zeroes on
 * guest-RAM buffers, plus {@code byte[]}/{@code MemorySegment} methods through a staging area;
 * recovery from DEVICE_NEEDS_RESET with resubmission of what was in flight.
 *
 * <p><b>Layouts</b>: {@link dev.airlock.devices.blk.BlkConfigLayout} (configuration space, feature
 * bits) and {@link dev.airlock.devices.blk.BlkRequestLayout} (request header, segments, types,
 * statuses).
 */
package dev.airlock.devices.blk;
