package dev.airlock.devices.blk;

import dev.airlock.transport.VirtioFrontend;
import dev.airlock.virtio.VirtioFeatures;

import java.lang.foreign.MemorySegment;

/**
 * What the driver learnt about a block device at initialisation: the negotiated features and the
 * configuration fields they make valid (VIRTIO 1.2 §5.2.4). The device is untrusted, so every limit
 * is clamped to something this driver can use.
 *
 * @param negotiatedFeatures    the features in force
 * @param capacitySectors       the capacity in 512-byte sectors
 * @param blockSize             blk_size if negotiated (and a power of two from 512 to 64 KiB), else 512
 * @param readOnly              whether RO was negotiated
 * @param queueCount            the request queues in use
 * @param sizeMax               the largest data buffer (size_max), or {@link Integer#MAX_VALUE}
 * @param segMax                the most data buffers per request (seg_max), or {@link Integer#MAX_VALUE}
 * @param maxDiscardSectors     sectors per discard, 0 if DISCARD was not negotiated
 * @param maxWriteZeroesSectors sectors per write-zeroes, 0 if WRITE_ZEROES was not negotiated
 * @param writeZeroesMayUnmap   whether write-zeroes with unmap may deallocate
 */
public record BlockDeviceInfo(long negotiatedFeatures, long capacitySectors, int blockSize, boolean readOnly, int queueCount,
                              int sizeMax, int segMax, long maxDiscardSectors, long maxWriteZeroesSectors,
                              boolean writeZeroesMayUnmap) {
    /**
     * Whether a feature was negotiated.
     *
     * @param feature the bit, for example {@link BlkConfigLayout#VIRTIO_BLK_F_FLUSH}
     * @return whether it is in force
     */
    public boolean has(int feature) {
        return VirtioFeatures.has(negotiatedFeatures, feature);
    }

    /**
     * The capacity in bytes.
     *
     * @return {@code capacitySectors * 512}, saturated at {@link Long#MAX_VALUE}
     */
    public long capacityBytes() {
        return capacitySectors > Long.MAX_VALUE >>> BlkRequestLayout.SECTOR_SHIFT ? Long.MAX_VALUE
                : capacitySectors << BlkRequestLayout.SECTOR_SHIFT;
    }

    /** Reads the configuration space (one consistent snapshot) for the negotiated features. */
    static BlockDeviceInfo read(VirtioFrontend frontend, long features, int queueCount) {
        byte[] bytes = new byte[BlkConfigLayout.CONFIG_LENGTH];
        frontend.readConfig(0, bytes);
        MemorySegment c = MemorySegment.ofArray(bytes);
        long capacity = BlkConfigLayout.get(c, BlkConfigLayout.CAPACITY_OFFSET, 8);
        int blk = (int) BlkConfigLayout.get(c, BlkConfigLayout.BLK_SIZE_OFFSET, 4);
        boolean blkValid = VirtioFeatures.has(features, BlkConfigLayout.VIRTIO_BLK_F_BLK_SIZE) && Integer.bitCount(blk) == 1
                && blk >= BlkRequestLayout.SECTOR_SIZE && blk <= 65536;
        long sizeMax = BlkConfigLayout.get(c, BlkConfigLayout.SIZE_MAX_OFFSET, 4);
        long segMax = BlkConfigLayout.get(c, BlkConfigLayout.SEG_MAX_OFFSET, 4);
        boolean discard = VirtioFeatures.has(features, BlkConfigLayout.VIRTIO_BLK_F_DISCARD);
        boolean zeroes = VirtioFeatures.has(features, BlkConfigLayout.VIRTIO_BLK_F_WRITE_ZEROES);
        return new BlockDeviceInfo(features, capacity < 0 ? Long.MAX_VALUE : capacity, blkValid ? blk : BlkRequestLayout.SECTOR_SIZE,
                VirtioFeatures.has(features, BlkConfigLayout.VIRTIO_BLK_F_RO), queueCount,
                VirtioFeatures.has(features, BlkConfigLayout.VIRTIO_BLK_F_SIZE_MAX) && sizeMax >= BlkRequestLayout.SECTOR_SIZE
                        ? (int) Math.min(sizeMax, Integer.MAX_VALUE) : Integer.MAX_VALUE,
                VirtioFeatures.has(features, BlkConfigLayout.VIRTIO_BLK_F_SEG_MAX) && segMax >= 1
                        ? (int) Math.min(segMax, Integer.MAX_VALUE) : Integer.MAX_VALUE,
                discard ? BlkConfigLayout.get(c, BlkConfigLayout.MAX_DISCARD_SECTORS_OFFSET, 4) : 0,
                zeroes ? BlkConfigLayout.get(c, BlkConfigLayout.MAX_WRITE_ZEROES_SECTORS_OFFSET, 4) : 0,
                zeroes && BlkConfigLayout.get(c, BlkConfigLayout.WRITE_ZEROES_MAY_UNMAP_OFFSET, 1) != 0);
    }
}
