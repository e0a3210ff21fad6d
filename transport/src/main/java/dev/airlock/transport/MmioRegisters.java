package dev.airlock.transport;

/**
 * The virtio-mmio version 2 register map (VIRTIO 1.2 §4.2.2), as offsets carried in msgq-mmio
 * requests. Registers are 32 bits wide and accessed with 4-byte aligned accesses; the
 * device-specific configuration space starts at {@link #CONFIG_OFFSET} and takes 1, 2 and 4-byte
 * aligned accesses.
 *
 * <table>
 *   <caption>Registers (R: driver reads, W: driver writes)</caption>
 *   <tr><th>offset</th><th>name</th><th>access</th></tr>
 *   <tr><td>0x000</td><td>MagicValue (0x74726976, "virt")</td><td>R</td></tr>
 *   <tr><td>0x004</td><td>Version (2)</td><td>R</td></tr>
 *   <tr><td>0x008</td><td>DeviceID</td><td>R</td></tr>
 *   <tr><td>0x00c</td><td>VendorID</td><td>R</td></tr>
 *   <tr><td>0x010</td><td>DeviceFeatures</td><td>R</td></tr>
 *   <tr><td>0x014</td><td>DeviceFeaturesSel</td><td>W</td></tr>
 *   <tr><td>0x020</td><td>DriverFeatures</td><td>W</td></tr>
 *   <tr><td>0x024</td><td>DriverFeaturesSel</td><td>W</td></tr>
 *   <tr><td>0x030</td><td>QueueSel</td><td>W</td></tr>
 *   <tr><td>0x034</td><td>QueueNumMax</td><td>R</td></tr>
 *   <tr><td>0x038</td><td>QueueNum</td><td>W</td></tr>
 *   <tr><td>0x044</td><td>QueueReady</td><td>RW</td></tr>
 *   <tr><td>0x050</td><td>QueueNotify</td><td>W</td></tr>
 *   <tr><td>0x060</td><td>InterruptStatus</td><td>R</td></tr>
 *   <tr><td>0x064</td><td>InterruptACK</td><td>W</td></tr>
 *   <tr><td>0x070</td><td>Status</td><td>RW</td></tr>
 *   <tr><td>0x080/0x084</td><td>QueueDescLow/High</td><td>W</td></tr>
 *   <tr><td>0x090/0x094</td><td>QueueDriverLow/High</td><td>W</td></tr>
 *   <tr><td>0x0a0/0x0a4</td><td>QueueDeviceLow/High</td><td>W</td></tr>
 *   <tr><td>0x0ac</td><td>SHMSel</td><td>W</td></tr>
 *   <tr><td>0x0b0/0x0b4</td><td>SHMLenLow/High (no shared memory regions: all ones)</td><td>R</td></tr>
 *   <tr><td>0x0b8/0x0bc</td><td>SHMBaseLow/High (all ones)</td><td>R</td></tr>
 *   <tr><td>0x0fc</td><td>ConfigGeneration</td><td>R</td></tr>
 *   <tr><td>0x100+</td><td>device-specific configuration space</td><td>RW</td></tr>
 * </table>
 * Every other offset below 0x100 (including QueueReset, 0x0c0, since VIRTIO_F_RING_RESET is not
 * offered) is answered with {@link TransportStatus#BAD_OFFSET}.
 */
public final class MmioRegisters {
    /** MagicValue. */
    public static final int MAGIC_VALUE_OFFSET = 0x000;
    /** Version. */
    public static final int VERSION_OFFSET = 0x004;
    /** DeviceID. */
    public static final int DEVICE_ID_OFFSET = 0x008;
    /** VendorID. */
    public static final int VENDOR_ID_OFFSET = 0x00c;
    /** DeviceFeatures. */
    public static final int DEVICE_FEATURES_OFFSET = 0x010;
    /** DeviceFeaturesSel. */
    public static final int DEVICE_FEATURES_SEL_OFFSET = 0x014;
    /** DriverFeatures. */
    public static final int DRIVER_FEATURES_OFFSET = 0x020;
    /** DriverFeaturesSel. */
    public static final int DRIVER_FEATURES_SEL_OFFSET = 0x024;
    /** QueueSel. */
    public static final int QUEUE_SEL_OFFSET = 0x030;
    /** QueueNumMax. */
    public static final int QUEUE_NUM_MAX_OFFSET = 0x034;
    /** QueueNum. */
    public static final int QUEUE_NUM_OFFSET = 0x038;
    /** QueueReady. */
    public static final int QUEUE_READY_OFFSET = 0x044;
    /** QueueNotify. */
    public static final int QUEUE_NOTIFY_OFFSET = 0x050;
    /** InterruptStatus. */
    public static final int INTERRUPT_STATUS_OFFSET = 0x060;
    /** InterruptACK. */
    public static final int INTERRUPT_ACK_OFFSET = 0x064;
    /** Status. */
    public static final int STATUS_OFFSET = 0x070;
    /** QueueDescLow. */
    public static final int QUEUE_DESC_LOW_OFFSET = 0x080;
    /** QueueDescHigh. */
    public static final int QUEUE_DESC_HIGH_OFFSET = 0x084;
    /** QueueDriverLow. */
    public static final int QUEUE_DRIVER_LOW_OFFSET = 0x090;
    /** QueueDriverHigh. */
    public static final int QUEUE_DRIVER_HIGH_OFFSET = 0x094;
    /** QueueDeviceLow. */
    public static final int QUEUE_DEVICE_LOW_OFFSET = 0x0a0;
    /** QueueDeviceHigh. */
    public static final int QUEUE_DEVICE_HIGH_OFFSET = 0x0a4;
    /** SHMSel. */
    public static final int SHM_SEL_OFFSET = 0x0ac;
    /** SHMLenLow. */
    public static final int SHM_LEN_LOW_OFFSET = 0x0b0;
    /** SHMLenHigh. */
    public static final int SHM_LEN_HIGH_OFFSET = 0x0b4;
    /** SHMBaseLow. */
    public static final int SHM_BASE_LOW_OFFSET = 0x0b8;
    /** SHMBaseHigh. */
    public static final int SHM_BASE_HIGH_OFFSET = 0x0bc;
    /** ConfigGeneration. */
    public static final int CONFIG_GENERATION_OFFSET = 0x0fc;
    /** The start of the device-specific configuration space. */
    public static final int CONFIG_OFFSET = 0x100;
    /** The value of MagicValue: "virt" in little-endian. */
    public static final int MAGIC_VALUE = 0x74726976;
    /** The value of Version for the non-legacy interface. */
    public static final int VERSION = 2;
    /** The value of VendorID: "AIRL" in little-endian. */
    public static final int VENDOR_ID = 0x4c524941;
    /** InterruptStatus bit: used buffer notification. */
    public static final int VIRTIO_MMIO_INT_VRING = 1;
    /** InterruptStatus bit: configuration change notification. */
    public static final int VIRTIO_MMIO_INT_CONFIG = 2;

    private MmioRegisters() {
    }
}
