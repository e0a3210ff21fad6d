/**
 * virtio transports for VMs whose memory is private.
 *
 * <h2>Shape</h2>
 * <ul>
 *   <li>Device side (in the primary): a {@link dev.airlock.transport.DeviceHost} owns the primary's
 *       interrupt handler and serves devices ({@link dev.airlock.transport.VirtioDeviceModel}s) to
 *       any number of secondaries, each device in a slot of its secondary, on either
 *       {@link dev.airlock.transport.TransportKind}. The transport owns the device status machine,
 *       builds the {@link dev.airlock.virtio.VirtqueueDevice}s from the driver's queue set-up
 *       (validated against the device's shared region only) and hands them to the model on
 *       DRIVER_OK.</li>
 *   <li>Driver side (in a secondary): a {@link dev.airlock.transport.DriverHost} owns the
 *       secondary's interrupt handler and opens a {@link dev.airlock.transport.DriverTransport} per
 *       device; a {@link dev.airlock.transport.VirtioFrontend} performs the initialisation of
 *       VIRTIO 1.2 §3.1.1 over any transport and exposes the {@link dev.airlock.virtio.VirtqueueDriver}s.</li>
 * </ul>
 *
 * <h2>Use</h2>
 * <pre>{@code
 * // control plane: one region per device, one queue pair and doorbell pair per VM pair
 * hypervisor.connectMessageQueues(primary, guest, 64);
 * hypervisor.connectDoorbells(primary, guest);
 * SharedRegionInfo region = hypervisor.createSharedRegion(primary, guest, "guest1.blk0", 2 << 20, hostBase, guestBase);
 *
 * // primary: serve the device in slot 0 of that guest
 * DeviceHost devices = new DeviceHost(primaryContext);
 * devices.addDevice(TransportKind.MSGQ_MMIO, region, 0, blkModel);
 *
 * // secondary: drive it
 * DriverHost drivers = new DriverHost(guestContext);
 * VirtioFrontend blk = new VirtioFrontend(drivers.open(TransportKind.MSGQ_MMIO, region.id(), 0),
 *         guestContext.addressSpace());
 * blk.setListener(() -> wakeDriverThread());
 * blk.initialize(2, supportedFeatures, 128);   // §3.1.1; then blk.queue(0).add(...), blk.kick(0), reap
 * }</pre>
 *
 * <h2>Multiplexing</h2>
 * The hypervisor connects one message queue and one doorbell per direction per primary/secondary
 * pair; up to {@link dev.airlock.transport.DoorbellFlagsLayout#MAX_SLOTS} devices share them: every
 * message carries the device's slot ({@link dev.airlock.transport.MmioMessageLayout}) and every
 * doorbell flag belongs to one slot ({@link dev.airlock.transport.DoorbellFlagsLayout}). Each device
 * has its own shared region (vrings, bounce pool, and for shmem-doorbell the header of
 * {@link dev.airlock.transport.ShmemHeaderLayout}).
 *
 * <h2>Threading</h2>
 * Everything a device host does happens on the primary's interrupt thread: register accesses,
 * queue set-up, resets and {@link dev.airlock.transport.VirtioDeviceModel#queueNotified}. It never
 * blocks there, except for one device's lock: a device added in
 * {@link dev.airlock.transport.NotificationMode#POLLING} has a poller thread that calls
 * queueNotified instead (see {@link dev.airlock.transport.PollingPolicy} for how it spins and
 * backs off), each call under the device's lock, so the model still sees one thread at a time; a
 * reset stops and joins the poller before the model's reset. A driver's register accesses block the calling thread until the device answers or
 * the timeout passes; they must not be made from the secondary's interrupt thread (listener
 * callbacks run there), which delivers the answers.
 *
 * <h2>Untrusted input</h2>
 * Every message and every header field from the other side is read once into a record, validated,
 * and refused with a status code; faults are counted, logged at a bounded rate and, where the
 * device can no longer work, turn into DEVICE_NEEDS_RESET. No exception from hostile input reaches
 * an interrupt thread.
 */
package dev.airlock.transport;
