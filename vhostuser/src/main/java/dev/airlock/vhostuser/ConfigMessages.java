package dev.airlock.vhostuser;

import dev.airlock.memory.sys.Linux;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.virtio.Virtqueues;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** GET_CONFIG, SET_CONFIG, GET_INFLIGHT_FD and SET_INFLIGHT_FD. */
final class ConfigMessages {
    private ConfigMessages() {
    }

    /** Checks the config header; returns {offset, size}. */
    private static int[] configRange(VhostUserMessage m) {
        if (m.payload.byteSize() < VhostUserConfigLayout.HEADER_LENGTH) {
            throw new VhostUserProtocolException(m.name() + ".size", m.payload.byteSize(), "shorter than the config header");
        }
        m.expectFds(0);
        long offset = Integer.toUnsignedLong(m.u32(VhostUserConfigLayout.OFFSET_OFFSET));
        long size = Integer.toUnsignedLong(m.u32(VhostUserConfigLayout.SIZE_OFFSET));
        if (offset + size > VhostUserConfigLayout.MAX_CONFIG_LENGTH) {
            throw new VhostUserProtocolException(m.name() + ".size", size, "offset " + offset + " plus size passes "
                    + VhostUserConfigLayout.MAX_CONFIG_LENGTH + " bytes");
        }
        m.expectSize(VhostUserConfigLayout.HEADER_LENGTH + (int) size);
        return new int[] {(int) offset, (int) size};
    }

    /** Replies with the requested bytes; bytes past the model's configuration space read as zero. */
    static void getConfig(VhostUserMessage m, DeviceRunner runner, VhostUserChannel channel) {
        int[] range = configRange(m);
        int offset = range[0];
        int size = range[1];
        VirtioDeviceModel model = runner.model();
        int limit = model.configSizeBytes();
        byte[] reply = new byte[VhostUserConfigLayout.HEADER_LENGTH + size];
        MemorySegment out = MemorySegment.ofArray(reply);
        MemorySegment.copy(m.payload, 0, out, 0, VhostUserConfigLayout.HEADER_LENGTH);
        int at = offset;
        while (at < offset + size && at < limit) {
            int width = (at & 3) == 0 && at + 4 <= Math.min(offset + size, limit) ? 4
                    : (at & 1) == 0 && at + 2 <= Math.min(offset + size, limit) ? 2 : 1;
            long value = model.readConfig(at, width);
            for (int b = 0; b < width; b++) {
                reply[VhostUserConfigLayout.HEADER_LENGTH + at - offset + b] = (byte) (value >>> (8 * b));
            }
            at += width;
        }
        channel.reply(m.request, out);
    }

    /** Writes the bytes through the model; a refused field is reported with REPLY_ACK or logged. */
    static boolean setConfig(VhostUserMessage m, DeviceRunner runner, VhostUserChannel channel) {
        int[] range = configRange(m);
        int flags = m.u32(VhostUserConfigLayout.FLAGS_OFFSET);
        if (flags != 0) {
            throw new VhostUserProtocolException(m.name() + ".flags", Integer.toUnsignedLong(flags), "only 0 (a driver write) is supported");
        }
        int offset = range[0];
        int size = range[1];
        if (offset + size > runner.model().configSizeBytes()) {
            throw new VhostUserProtocolException(m.name() + ".size", size, "write past the configuration space of "
                    + runner.model().configSizeBytes() + " bytes");
        }
        boolean ok = true;
        int at = offset;
        while (at < offset + size) {
            int width = (at & 3) == 0 && at + 4 <= offset + size ? 4 : (at & 1) == 0 && at + 2 <= offset + size ? 2 : 1;
            long value = 0;
            for (int b = 0; b < width; b++) {
                value |= (m.payload.get(ValueLayout.JAVA_BYTE, VhostUserConfigLayout.HEADER_LENGTH + at - offset + b) & 0xffL) << (8 * b);
            }
            ok &= runner.writeConfig(at, width, value);
            at += width;
        }
        if (!ok) {
            VhostUserLog.warn(runner.name() + ": SET_CONFIG of " + size + " bytes at " + offset + " refused by the device");
        }
        if (m.needReply()) {
            channel.replyU64(m.request, ok ? 0 : 1);
            return true;
        }
        return false;
    }

    /** Creates a zeroed inflight buffer for the counts asked and sends its memfd. */
    static void getInflightFd(VhostUserMessage m, DeviceRunner runner, VhostUserChannel channel) {
        m.expectSize(VhostUserInflightLayout.LENGTH);
        m.expectFds(0);
        int queues = m.u16(VhostUserInflightLayout.NUM_QUEUES_OFFSET);
        int queueSize = m.u16(VhostUserInflightLayout.QUEUE_SIZE_OFFSET);
        if (queues < 1 || queues > runner.queueCount()) {
            throw new VhostUserProtocolException(m.name() + ".num_queues", queues, "not 1 to " + runner.queueCount());
        }
        if (!Virtqueues.isValidQueueSize(queueSize)) {
            throw new VhostUserProtocolException(m.name() + ".queue_size", queueSize, "not a power of two from 1 to " + Virtqueues.MAX_QUEUE_SIZE);
        }
        long length = InflightBuffer.lengthBytes(queues, queueSize);
        int fd = InflightBuffer.create(length);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment body = arena.allocate(VhostUserInflightLayout.LAYOUT);
            body.set(ValueLayout.JAVA_LONG, VhostUserInflightLayout.MMAP_SIZE_OFFSET, length);
            body.set(ValueLayout.JAVA_LONG, VhostUserInflightLayout.MMAP_OFFSET_OFFSET, 0L);
            body.set(ValueLayout.JAVA_SHORT, VhostUserInflightLayout.NUM_QUEUES_OFFSET, (short) queues);
            body.set(ValueLayout.JAVA_SHORT, VhostUserInflightLayout.QUEUE_SIZE_OFFSET, (short) queueSize);
            channel.reply(m.request, body, fd);
        } finally {
            Linux.close(fd);
        }
    }

    /** Maps the buffer the front-end kept; the rings use it when they start. */
    static void setInflightFd(VhostUserMessage m, DeviceRunner runner) {
        m.expectSize(VhostUserInflightLayout.LENGTH);
        m.expectFds(1);
        InflightBuffer buffer = InflightBuffer.map(m.takeFd(0), m.u64(VhostUserInflightLayout.MMAP_SIZE_OFFSET),
                m.u64(VhostUserInflightLayout.MMAP_OFFSET_OFFSET), m.u16(VhostUserInflightLayout.NUM_QUEUES_OFFSET),
                m.u16(VhostUserInflightLayout.QUEUE_SIZE_OFFSET), runner.queueCount(), Virtqueues.MAX_QUEUE_SIZE);
        runner.setInflight(buffer);
    }
}
