package dev.airlock.vhostuser;

import dev.airlock.memory.sys.Linux;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * One received request: the header fields, a private copy of the payload, and the descriptors that
 * came with it (owned by the message until taken with {@link #takeFd}; {@link #closeFds} closes the
 * rest).
 */
final class VhostUserMessage {
    final int request;
    final int flags;
    final MemorySegment payload;
    private final int[] fds;

    VhostUserMessage(int request, int flags, MemorySegment payload, int[] fds) {
        this.request = request;
        this.flags = flags;
        this.payload = payload;
        this.fds = fds;
    }

    String name() {
        return VhostUserRequest.name(request);
    }

    boolean needReply() {
        return (flags & VhostUserHeaderLayout.FLAG_NEED_REPLY) != 0;
    }

    int fdCount() {
        return fds.length;
    }

    /** Hands descriptor {@code i} to the caller, who must close it. */
    int takeFd(int i) {
        int fd = fds[i];
        fds[i] = -1;
        return fd;
    }

    /** Closes every descriptor not taken. */
    void closeFds() {
        for (int i = 0; i < fds.length; i++) {
            if (fds[i] >= 0) {
                Linux.close(fds[i]);
                fds[i] = -1;
            }
        }
    }

    /** Requires exactly {@code length} payload bytes. */
    void expectSize(int length) {
        if (payload.byteSize() != length) {
            throw new VhostUserProtocolException(name() + ".size", payload.byteSize(), "must be " + length);
        }
    }

    /** Requires exactly {@code count} descriptors. */
    void expectFds(int count) {
        if (fds.length != count) {
            throw new VhostUserProtocolException(name() + ".fds", fds.length, "must carry exactly " + count + " descriptors");
        }
    }

    int u32(long offset) {
        return payload.get(ValueLayout.JAVA_INT_UNALIGNED, offset);
    }

    long u64(long offset) {
        return payload.get(ValueLayout.JAVA_LONG_UNALIGNED, offset);
    }

    int u16(long offset) {
        return payload.get(ValueLayout.JAVA_SHORT_UNALIGNED, offset) & 0xffff;
    }
}
