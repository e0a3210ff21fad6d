package dev.airlock.cli.machine;

import dev.airlock.devices.blk.BlkConfigLayout;
import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.memory.GuestAddressSpace;
import dev.airlock.memory.MemoryRegion;
import dev.airlock.memory.SharedMemory;
import dev.airlock.transport.TransportException;
import dev.airlock.transport.VirtioFrontend;
import dev.airlock.vhostuser.VhostUserDriverTransport;

import java.time.Duration;
import java.util.Objects;

/**
 * A device a secondary VM drives over vhost-user, with this process acting as its VMM: a memfd
 * region added to the VM's address space as a shared region, the {@link VhostUserDriverTransport}
 * that hands exactly that region to the backend (vrings and bounce pool; never the private RAM), and
 * the {@link VirtioFrontend} over it. Closing it resets the device, disconnects, takes the region out
 * of the address space and unmaps it.
 */
public final class VhostUserDevice implements AutoCloseable {
    /** Regions of vhost-user devices start on this alignment (as the hypervisor's device slots do). */
    public static final long REGION_ALIGNMENT = 1L << 30;

    private final VhostUserDeviceSpec spec;
    private final GuestAddressSpace space;
    private final SharedMemory shared;
    private final MemoryRegion region;
    private final VirtioFrontend frontend;
    private boolean closed;

    private VhostUserDevice(VhostUserDeviceSpec spec, GuestAddressSpace space, SharedMemory shared, MemoryRegion region,
                            VirtioFrontend frontend) {
        this.spec = spec;
        this.space = space;
        this.shared = shared;
        this.region = region;
        this.frontend = frontend;
    }

    /**
     * Creates the device's region at {@code gpaBase}, adds it to {@code space} and connects to the
     * backend (the vhost-user handshake, up to SET_MEM_TABLE).
     *
     * @param spec       the device
     * @param space      the VM's address space (its private RAM, the buffers the pool bounces)
     * @param regionName the region's name, unique in {@code space}
     * @param gpaBase    where the region goes: free, and aligned to 4 KiB
     * @param timeout    how long to wait for each of the backend's replies
     * @return the device, its frontend not yet initialised
     * @throws TransportException if the backend cannot be reached or answers badly
     * @throws IllegalArgumentException if the region overlaps one already in {@code space}
     */
    public static VhostUserDevice open(VhostUserDeviceSpec spec, GuestAddressSpace space, String regionName, long gpaBase,
                                       Duration timeout) {
        Objects.requireNonNull(spec, "spec");
        SharedMemory shared = SharedMemory.create(regionName, spec.regionBytes());
        MemoryRegion region = null;
        VhostUserDriverTransport transport = null;
        try {
            region = space.add(shared.region(gpaBase));
            transport = VhostUserDriverTransport.connect(spec.socket(), BlkDevice.DEVICE_ID, BlkConfigLayout.CONFIG_LENGTH, shared, gpaBase,
                    timeout, Duration.ofSeconds(spec.reconnectSeconds()));
            return new VhostUserDevice(spec, space, shared, region, new VirtioFrontend(transport, space));
        } catch (RuntimeException e) {
            if (transport != null) {
                transport.close();
            }
            if (region != null) {
                space.remove(region);
            }
            shared.close();
            throw e;
        }
    }

    /**
     * The first free base for a vhost-user region: above every region in {@code space} and above
     * {@code floorGpa} (where regions the hypervisor may still grant end), on {@link #REGION_ALIGNMENT}.
     *
     * @param space    the VM's address space
     * @param floorGpa the lowest base to use
     * @return the base
     */
    public static long nextFreeBase(GuestAddressSpace space, long floorGpa) {
        long top = floorGpa;
        for (MemoryRegion r : space.regions()) {
            long end = Math.addExact(r.lastGpa(), 1);
            if (Long.compareUnsigned(end, top) > 0) {
                top = end;
            }
        }
        return Math.multiplyExact(Math.ceilDiv(top, REGION_ALIGNMENT), REGION_ALIGNMENT);
    }

    /**
     * What the device is.
     *
     * @return the spec
     */
    public VhostUserDeviceSpec spec() {
        return spec;
    }

    /**
     * The shared region's guest-physical base.
     *
     * @return the GPA
     */
    public long gpaBase() {
        return region.gpaBase();
    }

    /**
     * The frontend over the vhost-user transport.
     *
     * @return the frontend
     */
    public VirtioFrontend frontend() {
        return frontend;
    }

    /**
     * The device as the workload sees it.
     *
     * @return a guest device named {@code TYPE@vhost-user:SOCKETNAME}
     */
    public GuestWorkload.GuestDevice guestDevice() {
        return new GuestWorkload.GuestDevice(spec.type(), spec.displayName(), frontend);
    }

    /** Resets the device if it still answers, disconnects, removes the region and unmaps it. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            frontend.close();
        } finally {
            space.remove(region);
            shared.close();
        }
    }

    @Override
    public String toString() {
        return spec.displayName() + " at 0x" + Long.toHexString(region.gpaBase());
    }
}
