/**
 * The hypervisor: VMs, grants, shared regions, message queues and doorbells, as on the Type-1
 * hypervisor of the seed (one primary VM that runs the device backends, secondary VMs whose
 * memory is private to them).
 *
 * <h2>Two interfaces</h2>
 * <ul>
 *   <li>{@link dev.airlock.hypervisor.Hypervisor}, the control plane: create, start, stop and
 *       destroy VMs; create shared regions and grant each to one primary/secondary pair; connect
 *       message queues and doorbells between such a pair; list what exists.</li>
 *   <li>{@link dev.airlock.hypervisor.VmContext}, the hypercall interface of one VM, with the VM's
 *       identity bound in: send and receive messages, ring and read doorbells, mask and unmask,
 *       the VM's address space and shared regions, and its interrupt handler. Transports and
 *       devices see only this interface.</li>
 * </ul>
 * Refusals are {@link dev.airlock.hypervisor.HypervisorRefusedException}s with a
 * {@link dev.airlock.hypervisor.RefusalReason}, in both interfaces and both runtimes.
 *
 * <h2>Shared regions: one per device</h2>
 * {@link dev.airlock.hypervisor.Hypervisor#createSharedRegion} makes one region per call, and the
 * intended use is one region per device: its vrings, its bounce pool and (for the shmem-doorbell
 * transport) its header. A per-pair region would need an allocator inside the region that both
 * sides trust, and a device removed from the pair could not give its memory back; per device, a
 * region's lifetime is the device's, a misbehaving guest can only corrupt the device it shares,
 * and the multi-process runtime passes one memfd per device to the backend program that serves it.
 * Each side sees the region at its own guest-physical base: the same memfd is mapped twice, at
 * different virtual and guest-physical addresses (the seed's non-linear paddr↔vaddr mapping).
 *
 * <h2>Interrupts</h2>
 * An interrupt is an {@link dev.airlock.hypervisor.InterruptCause} about one peer VM:
 * {@code MESSAGE_AVAILABLE} (the queue from the peer went from empty to non-empty),
 * {@code QUEUE_NOT_FULL} (the queue toward the peer went from full to not full), {@code DOORBELL}
 * (the peer rang an unmasked doorbell, or unmask found flags pending) and {@code PEER_GONE}; the
 * multi-process runtime adds {@code BACKEND_DETACHED} and {@code BACKEND_ATTACHED} (below).
 * Interrupts of one cause and peer coalesce while pending, and are edge-triggered on the
 * transitions above. The contract that makes this lossless: on each interrupt, the handler drains
 * (receives until {@link dev.airlock.hypervisor.VmContext#EMPTY}, sends until
 * {@link dev.airlock.hypervisor.SendResult#FULL} or done, reads and clears the doorbell). A
 * handler that does sees every message and every flag; it may also see spurious interrupts.
 *
 * <h2>Threading and ordering (in-process runtime)</h2>
 * <ul>
 *   <li>Each VM has one interrupt thread (a daemon platform thread named
 *       {@code airlock-vm-NAME-irq}) while it runs. Its handler runs there, one interrupt at a time.
 *       Interrupts raised while the VM is created or stopped are held and delivered on start.</li>
 *   <li>Hypercalls may be made from any thread and take no lock. A message queue is a bounded
 *       lock-free ring, FIFO per direction, safe for several senders and several receivers; a
 *       doorbell is one atomic word (OR to ring, exchange with zero to read).</li>
 *   <li>A message sent happens-before its receipt; flags rung happen-before the read that returns
 *       them; so a sender's writes to a shared region before sending or ringing are visible to
 *       the receiver after it receives or reads.</li>
 *   <li>Destroying a VM revokes its grants first, then raises {@code PEER_GONE} in each peer, then
 *       (outside interrupt context) waits for its interrupt thread to end and unmaps its RAM and
 *       its side of every region. The peer's side of a region is removed from the peer's address
 *       space at once and unmapped after the peer's {@code PEER_GONE} handler returns (at once if
 *       the peer is not running). The memfd is closed when both sides are unmapped. Slices of an
 *       unmapped region throw {@link java.lang.IllegalStateException} on access; they never dangle.</li>
 *   <li>An interrupt handler that throws kills its VM: it is logged and destroyed as above.</li>
 * </ul>
 *
 * <h2>The multi-process runtime ({@code dev.airlock.hypervisor.process})</h2>
 * The same two interfaces, with each VM and each backend an OS process and the hypervisor a daemon
 * ({@code HypervisorDaemon}) on a Unix socket; the wire format is {@code WireLayout}.
 * <ul>
 *   <li>{@code Hypervisor} is {@code RemoteHypervisor}, a client of the daemon's socket that presents
 *       the daemon's control credential; the {@code airlock hypervisor} command runs the daemon,
 *       {@code airlock status} lists through it.</li>
 *   <li>{@code createVm} issues a random 128-bit credential for the VM; {@code assignBackend} issues
 *       one for a backend process serving one primary/secondary pair. A process obtains its
 *       {@code VmContext} ({@code RemoteVmContext}) by attaching with it; the daemon checks the
 *       credential, the peer's uid ({@code SO_PEERCRED}), and binds the credential to the first
 *       pid that presents it. Identity is the connection, as here it is the handle.</li>
 *   <li>Private RAM is the VM process's own anonymous memory: never a memfd, never sent, so no
 *       other process can map it. A shared region's memfd is created by the daemon (which never
 *       maps it) and passed with {@code SCM_RIGHTS} to exactly its two processes (the secondary's,
 *       and the primary's or its backend's), which map it at their own bases.</li>
 *   <li>Message queues are kept by the daemon: send and receive are requests on the socket, bounded
 *       per direction by the queue depth, with exactly this runtime's FULL/EMPTY results and
 *       {@code MESSAGE_AVAILABLE}/{@code QUEUE_NOT_FULL} edges, sent as interrupt events.</li>
 *   <li>Doorbells are a one-page memfd per pair mapped by exactly the two processes (a pending-flags
 *       word and a mask word per direction, atomic OR and exchange, as here) plus an eventfd per
 *       direction: ringing writes the target's eventfd unless it is masked, and a thread in the
 *       target process blocks reading it and raises {@code DOORBELL} on the interrupt thread.</li>
 *   <li>Interrupts run on the process's own interrupt thread ({@code airlock-vm-NAME-irq}), held
 *       while the VM is not running, coalesced per cause and peer as here.</li>
 *   <li>{@code PEER_GONE} comes from the daemon, which learns of a death from the closed socket. It
 *       revokes the grants, closes its descriptors for the dead side, and tells the peer, whose
 *       process closes its doorbell fds at once and unmaps the shared regions after its
 *       {@code PEER_GONE} handler returns.</li>
 *   <li>A dead backend revokes nothing: its pair keeps its regions, queues and doorbells, the
 *       messages queued toward it are dropped, and the secondary gets {@code BACKEND_DETACHED};
 *       {@code assignBackend} may then issue a replacement's credential, and when the replacement
 *       attaches it is handed the pair's grants and the secondary gets {@code BACKEND_ATTACHED}.
 *       Doorbell flags rung while no backend was attached stay pending for the replacement.</li>
 * </ul>
 * What stays in-process only: {@link dev.airlock.hypervisor.InProcessHypervisor#context} and
 * handing out {@code MemorySegment}s of another VM's mapping within one JVM.
 */
package dev.airlock.hypervisor;
