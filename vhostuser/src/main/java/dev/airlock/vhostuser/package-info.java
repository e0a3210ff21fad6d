/**
 * The vhost-user protocol (QEMU docs/interop/vhost-user.rst), back-end side: serves any
 * {@link dev.airlock.transport.VirtioDeviceModel} to a VMM over a Unix socket.
 * {@link dev.airlock.vhostuser.VhostUserBackend} is the entry point.
 *
 * <p><b>Parts.</b> {@code VhostUserChannel} reads and writes messages (the {@code *Layout} classes
 * describe each payload); {@code VhostUserConnection} validates every request (size, flags, fds,
 * indices, addresses, negotiated protocol features) and applies it to a {@code DeviceRunner}, which
 * owns the vrings, the {@code GuestMemoryTable} (the front-end's memfds mapped {@code MAP_SHARED},
 * as a guest-physical address space plus the front-end's user addresses for ring addresses), the
 * {@code KickPoller} thread (one {@code poll} over the kick eventfds), and the inflight buffer
 * ({@code InflightQueue}, one per ring).
 *
 * <p><b>Failure.</b> A request that breaks the protocol, or asks for something not offered, throws
 * {@link dev.airlock.vhostuser.VhostUserProtocolException}: the connection is closed with one log
 * line naming the message and field, and the next front-end is served. A guest that breaks the
 * virtqueue protocol breaks only its queue (the error eventfd is signalled).
 */
package dev.airlock.vhostuser;
