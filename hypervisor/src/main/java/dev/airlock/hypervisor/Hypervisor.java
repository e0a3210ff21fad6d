package dev.airlock.hypervisor;

import java.util.List;

/**
 * The hypervisor's control plane: VM lifecycle, shared regions and the connections between a
 * primary and its secondaries. The VMs themselves use {@link VmContext}.
 *
 * <p>Rules that every runtime enforces:
 * <ul>
 *   <li>At most one live {@link VmRole#PRIMARY}; any number of secondaries; names unique among live VMs.</li>
 *   <li>Shared regions, message queues and doorbells exist only between the primary and one
 *       secondary. Two secondaries can never be connected ({@link RefusalReason#WRONG_VM}).</li>
 *   <li>Destroying a VM revokes every grant it holds, removes its shared regions from its peers'
 *       address spaces, releases their memory once neither side uses it, and injects
 *       {@link InterruptCause#PEER_GONE} into each peer.</li>
 * </ul>
 *
 * <p>Every refusal is a {@link HypervisorRefusedException}. Lifecycle calls are idempotent where
 * that is harmless: starting a running VM or stopping a stopped one does nothing.
 */
public interface Hypervisor extends AutoCloseable {
    /**
     * The settings every VM of this hypervisor shares.
     *
     * @return the configuration
     */
    HypervisorConfig config();

    /**
     * Creates a VM with its private RAM, in state {@link VmState#CREATED}.
     *
     * @param spec name, role, RAM
     * @return its new id
     * @throws HypervisorRefusedException {@link RefusalReason#CONFLICT} for a second primary or a name in use
     */
    VmId createVm(VmSpec spec);

    /**
     * Starts a created or stopped VM: its hypercalls are served and interrupts held while it was
     * stopped are delivered.
     *
     * @param vm the VM
     * @throws HypervisorRefusedException {@link RefusalReason#NO_SUCH_VM}
     */
    void startVm(VmId vm);

    /**
     * Stops a running VM: its hypercalls are refused with {@link RefusalReason#NOT_RUNNING} and its
     * interrupts held pending. Grants and queue contents are kept.
     *
     * @param vm the VM
     * @throws HypervisorRefusedException {@link RefusalReason#NO_SUCH_VM}
     */
    void stopVm(VmId vm);

    /**
     * Destroys a VM: revokes its grants, tells its peers ({@link InterruptCause#PEER_GONE}),
     * releases its memory and shared regions, and ends its interrupt delivery.
     *
     * @param vm the VM
     * @throws HypervisorRefusedException {@link RefusalReason#NO_SUCH_VM}
     */
    void destroyVm(VmId vm);

    /**
     * The live VMs.
     *
     * @return a snapshot, ordered by id
     */
    List<VmInfo> listVms();

    /**
     * One live VM.
     *
     * @param vm its id
     * @return a snapshot
     * @throws HypervisorRefusedException {@link RefusalReason#NO_SUCH_VM}
     */
    VmInfo vmInfo(VmId vm);

    /**
     * Creates a zero-filled shared region and grants it to exactly {@code primary} and
     * {@code secondary}. Each sees it as a {@link dev.airlock.memory.RegionKind#SHARED} region of
     * its address space at its own base, named {@code name}; no other VM can reach it.
     *
     * <p>Regions are made per device, not per pair: each device (vrings, bounce pool, transport
     * header) gets its own region, so a device can be added or removed without touching the others.
     * Names must be unique within each of the two address spaces (for example {@code "guest1.blk0"}),
     * since the primary sees the regions of all its secondaries.
     *
     * @param primary          the primary
     * @param secondary        a secondary
     * @param name             the region's name: letters, digits, {@code . _ -}
     * @param sizeBytes        a positive multiple of 4096
     * @param primaryGpaBase   where the primary sees it, page aligned
     * @param secondaryGpaBase where the secondary sees it, page aligned
     * @return what was created
     * @throws HypervisorRefusedException {@link RefusalReason#NO_SUCH_VM}, {@link RefusalReason#WRONG_VM}
     *         if the roles do not match, {@link RefusalReason#CONFLICT} if the name is taken or the
     *         range overlaps a region in either address space
     */
    SharedRegionInfo createSharedRegion(VmId primary, VmId secondary, String name, long sizeBytes,
                                        long primaryGpaBase, long secondaryGpaBase);

    /**
     * Removes a shared region from both address spaces and releases it. Unlike the release that
     * follows a peer's death, this does not wait for either side: the control plane quiesces the
     * device that used it first. Slices already handed out become inaccessible (accessing them
     * throws {@link IllegalStateException}); they never dangle.
     *
     * @param region the region
     * @throws HypervisorRefusedException {@link RefusalReason#NOT_GRANTED} if no such region exists
     */
    void destroySharedRegion(SharedRegionId region);

    /**
     * The shared regions that exist.
     *
     * @return a snapshot, ordered by id
     */
    List<SharedRegionInfo> listSharedRegions();

    /**
     * Connects two message queues between a primary and a secondary, one in each direction.
     *
     * @param primary   the primary
     * @param secondary a secondary
     * @param depth     how many messages each queue holds, 2 to 65536
     * @throws HypervisorRefusedException {@link RefusalReason#NO_SUCH_VM}, {@link RefusalReason#WRONG_VM},
     *         {@link RefusalReason#CONFLICT} if they are already connected by message queues
     */
    void connectMessageQueues(VmId primary, VmId secondary, int depth);

    /**
     * Connects two doorbells between a primary and a secondary, one in each direction. Each starts
     * unmasked with no flags pending.
     *
     * @param primary   the primary
     * @param secondary a secondary
     * @throws HypervisorRefusedException {@link RefusalReason#NO_SUCH_VM}, {@link RefusalReason#WRONG_VM},
     *         {@link RefusalReason#CONFLICT} if they are already connected by doorbells
     */
    void connectDoorbells(VmId primary, VmId secondary);

    /** Destroys every VM and releases everything. Further control-plane calls throw {@link IllegalStateException}. */
    @Override
    void close();
}
