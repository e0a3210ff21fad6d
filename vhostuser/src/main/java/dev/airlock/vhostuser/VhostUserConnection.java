package dev.airlock.vhostuser;

import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.UnixSocket;
import dev.airlock.transport.VirtioDeviceModel;

import java.lang.foreign.MemorySegment;

import static dev.airlock.vhostuser.VhostUserRequest.PROTOCOL_F_CONFIG;
import static dev.airlock.vhostuser.VhostUserRequest.PROTOCOL_F_CONFIGURE_MEM_SLOTS;
import static dev.airlock.vhostuser.VhostUserRequest.PROTOCOL_F_INFLIGHT_SHMFD;
import static dev.airlock.vhostuser.VhostUserRequest.PROTOCOL_F_MQ;
import static dev.airlock.vhostuser.VhostUserRequest.PROTOCOL_F_REPLY_ACK;
import static dev.airlock.vhostuser.VhostUserRequest.PROTOCOL_F_RESET_DEVICE;

/**
 * One front-end connection: reads each request, validates it completely (size, flags, fds, indices,
 * addresses) and applies it to the {@link DeviceRunner}. Anything invalid or unsupported throws
 * {@link VhostUserProtocolException}, which ends the connection. Runs on one thread.
 */
final class VhostUserConnection {
    private final String name;
    private final VhostUserChannel channel;
    private final DeviceRunner runner;
    private long protocolFeatures;

    VhostUserConnection(String name, UnixSocket socket, VirtioDeviceModel model) {
        this.name = name;
        this.runner = new DeviceRunner(name, model);
        this.channel = new VhostUserChannel(socket);
    }

    /** Serves requests until the front-end hangs up (returns) or breaks the protocol (throws). */
    void serve() {
        while (true) {
            VhostUserMessage message = channel.read();
            if (message == null) {
                return;
            }
            try {
                if (message.needReply() && !hasProtocolFeature(PROTOCOL_F_REPLY_ACK)) {
                    throw new VhostUserProtocolException(message.name() + ".flags", message.flags, "NEED_REPLY without REPLY_ACK negotiated");
                }
                boolean replied = dispatch(message);
                if (message.needReply() && !replied) {
                    channel.replyU64(message.request, 0);
                }
            } finally {
                message.closeFds();
            }
        }
    }

    /** Wakes the serving thread (from any thread); it then ends the connection. */
    void shutdown() {
        channel.shutdown();
    }

    /** Releases everything: model reset, memory unmapped, fds closed. Call on the serving thread after {@link #serve}. */
    void close() {
        try {
            runner.close();
        } finally {
            channel.close();
        }
    }

    private boolean hasProtocolFeature(int bit) {
        return (protocolFeatures & (1L << bit)) != 0;
    }

    private void requireProtocolFeature(VhostUserMessage m, int bit) {
        if (!hasProtocolFeature(bit)) {
            throw new VhostUserProtocolException(m.name() + ".request", m.request, "protocol feature " + bit + " was not negotiated");
        }
    }

    /** Handles one request; returns whether it sent a reply of its own. Control-plane requests here, the rest below. */
    private boolean dispatch(VhostUserMessage m) {
        switch (m.request) {
            case VhostUserRequest.GET_FEATURES -> {
                noPayload(m);
                channel.replyU64(m.request, runner.offeredFeatures());
                return true;
            }
            case VhostUserRequest.SET_FEATURES -> {
                u64Only(m);
                runner.setFeatures(m.name() + ".u64", m.u64(0));
            }
            case VhostUserRequest.GET_PROTOCOL_FEATURES -> {
                noPayload(m);
                channel.replyU64(m.request, VhostUserRequest.SUPPORTED_PROTOCOL_FEATURES);
                return true;
            }
            case VhostUserRequest.SET_PROTOCOL_FEATURES -> setProtocolFeatures(m);
            case VhostUserRequest.SET_OWNER -> noPayload(m);
            case VhostUserRequest.RESET_OWNER -> {
                noPayload(m);
                runner.resetDevice();
            }
            case VhostUserRequest.RESET_DEVICE -> {
                requireProtocolFeature(m, PROTOCOL_F_RESET_DEVICE);
                noPayload(m);
                runner.resetDevice();
            }
            case VhostUserRequest.GET_QUEUE_NUM -> {
                requireProtocolFeature(m, PROTOCOL_F_MQ);
                noPayload(m);
                channel.replyU64(m.request, runner.queueCount());
                return true;
            }
            case VhostUserRequest.SET_MEM_TABLE -> MemoryMessages.setMemTable(m, runner);
            case VhostUserRequest.GET_MAX_MEM_SLOTS -> {
                requireProtocolFeature(m, PROTOCOL_F_CONFIGURE_MEM_SLOTS);
                noPayload(m);
                channel.replyU64(m.request, GuestMemoryTable.MAX_REGIONS);
                return true;
            }
            case VhostUserRequest.ADD_MEM_REG -> {
                requireProtocolFeature(m, PROTOCOL_F_CONFIGURE_MEM_SLOTS);
                MemoryMessages.addMemReg(m, runner);
            }
            case VhostUserRequest.REM_MEM_REG -> {
                requireProtocolFeature(m, PROTOCOL_F_CONFIGURE_MEM_SLOTS);
                MemoryMessages.remMemReg(m, runner);
            }
            default -> {
                return dispatchVringAndConfig(m);
            }
        }
        return false;
    }

    /** The vring, configuration and inflight requests; returns whether a reply was sent. */
    private boolean dispatchVringAndConfig(VhostUserMessage m) {
        switch (m.request) {
            case VhostUserRequest.SET_VRING_NUM, VhostUserRequest.SET_VRING_BASE, VhostUserRequest.SET_VRING_ENABLE -> vringState(m);
            case VhostUserRequest.GET_VRING_BASE -> {
                Vring ring = stateRing(m);
                int base = runner.stopRing(ring);
                channel.reply(m.request, MemorySegment.ofArray(new int[] {ring.index, base}));
                return true;
            }
            case VhostUserRequest.SET_VRING_ADDR -> vringAddr(m);
            case VhostUserRequest.SET_VRING_KICK, VhostUserRequest.SET_VRING_CALL, VhostUserRequest.SET_VRING_ERR -> vringFd(m);
            case VhostUserRequest.GET_CONFIG -> {
                requireProtocolFeature(m, PROTOCOL_F_CONFIG);
                ConfigMessages.getConfig(m, runner, channel);
                return true;
            }
            case VhostUserRequest.SET_CONFIG -> {
                requireProtocolFeature(m, PROTOCOL_F_CONFIG);
                return ConfigMessages.setConfig(m, runner, channel);
            }
            case VhostUserRequest.GET_INFLIGHT_FD -> {
                requireProtocolFeature(m, PROTOCOL_F_INFLIGHT_SHMFD);
                ConfigMessages.getInflightFd(m, runner, channel);
                return true;
            }
            case VhostUserRequest.SET_INFLIGHT_FD -> {
                requireProtocolFeature(m, PROTOCOL_F_INFLIGHT_SHMFD);
                ConfigMessages.setInflightFd(m, runner);
            }
            default -> throw new VhostUserProtocolException(m.name() + ".request", Integer.toUnsignedLong(m.request),
                    "unknown or unsupported request");
        }
        return false;
    }

    private static void noPayload(VhostUserMessage m) {
        m.expectSize(0);
        m.expectFds(0);
    }

    private static void u64Only(VhostUserMessage m) {
        m.expectSize(VhostUserVringLayout.U64_LENGTH);
        m.expectFds(0);
    }

    private void setProtocolFeatures(VhostUserMessage m) {
        u64Only(m);
        long requested = m.u64(0);
        if ((requested & ~VhostUserRequest.SUPPORTED_PROTOCOL_FEATURES) != 0) {
            throw new VhostUserProtocolException(m.name() + ".u64", requested, "acknowledges protocol features not offered");
        }
        protocolFeatures = requested;
    }

    private Vring stateRing(VhostUserMessage m) {
        m.expectSize(VhostUserVringLayout.STATE_LENGTH);
        m.expectFds(0);
        return runner.ring(m.name() + ".index", Integer.toUnsignedLong(m.u32(VhostUserVringLayout.STATE_INDEX_OFFSET)));
    }

    private void vringState(VhostUserMessage m) {
        Vring ring = stateRing(m);
        long num = Integer.toUnsignedLong(m.u32(VhostUserVringLayout.STATE_NUM_OFFSET));
        String field = m.name() + ".num";
        switch (m.request) {
            case VhostUserRequest.SET_VRING_NUM -> runner.setNum(field, ring, num);
            case VhostUserRequest.SET_VRING_BASE -> runner.setBase(field, ring, num);
            default -> {
                if (num > 1) {
                    throw new VhostUserProtocolException(field, num, "not 0 or 1");
                }
                runner.setEnable(ring, num == 1);
            }
        }
    }

    private void vringAddr(VhostUserMessage m) {
        m.expectSize(VhostUserVringLayout.ADDR_LENGTH);
        m.expectFds(0);
        Vring ring = runner.ring(m.name() + ".index", Integer.toUnsignedLong(m.u32(VhostUserVringLayout.ADDR_INDEX_OFFSET)));
        runner.setAddr(m.name(), ring, m.u32(VhostUserVringLayout.ADDR_FLAGS_OFFSET), m.u64(VhostUserVringLayout.ADDR_DESC_OFFSET),
                m.u64(VhostUserVringLayout.ADDR_USED_OFFSET), m.u64(VhostUserVringLayout.ADDR_AVAIL_OFFSET));
    }

    private void vringFd(VhostUserMessage m) {
        m.expectSize(VhostUserVringLayout.U64_LENGTH);
        long value = m.u64(0);
        if ((value & ~(VhostUserVringLayout.FD_INDEX_MASK | VhostUserVringLayout.FD_NOFD_FLAG)) != 0) {
            throw new VhostUserProtocolException(m.name() + ".u64", value, "reserved bits 9-63 set");
        }
        Vring ring = runner.ring(m.name() + ".u64", value & VhostUserVringLayout.FD_INDEX_MASK);
        boolean noFd = (value & VhostUserVringLayout.FD_NOFD_FLAG) != 0;
        m.expectFds(noFd ? 0 : 1);
        int fd = noFd ? -1 : m.takeFd(0);
        if (fd >= 0) {
            try {
                EventFds.requireNonBlockingEventFd(m.name() + ".fd", fd);
            } catch (VhostUserProtocolException e) {
                Linux.close(fd);
                throw e;
            }
        }
        switch (m.request) {
            case VhostUserRequest.SET_VRING_KICK -> {
                if (noFd) {
                    throw new VhostUserProtocolException(m.name() + ".u64", value, "polling without a kick fd is not supported");
                }
                runner.setKick(m.name(), ring, fd);
            }
            case VhostUserRequest.SET_VRING_CALL -> ring.setCallFd(fd);
            default -> ring.setErrFd(fd);
        }
    }

    @Override
    public String toString() {
        return "VhostUserConnection(" + name + ")";
    }

}
