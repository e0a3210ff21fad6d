package dev.airlock.hypervisor.process;

import dev.airlock.memory.sys.Linux;
import dev.airlock.memory.sys.UnixSocket;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Frames ({@link WireLayout}) over a {@link UnixSocket}: one reader thread, any number of writers
 * (serialized). The receive buffer is allocated once, {@link WireLayout#MAX_FRAME_BYTES} long, so a
 * connection's memory is bounded whatever the peer sends.
 */
final class FrameChannel implements AutoCloseable {
    private final UnixSocket socket;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment buffer;
    private final Object writeLock = new Object();
    /** Guarded by {@code writeLock}: no send reaches a closed (possibly reused) descriptor number. */
    private boolean closed;

    FrameChannel(UnixSocket socket) {
        this.socket = socket;
        this.buffer = arena.allocate(WireLayout.LENGTH_LENGTH + WireLayout.MAX_FRAME_BYTES, 8);
    }

    UnixSocket socket() {
        return socket;
    }

    /** One frame as read: the payload is a read-only buffer positioned at its start. */
    record Frame(int type, long requestId, Reader payload, int[] fds) {
        void closeFds() {
            for (int fd : fds) {
                Linux.close(fd);
            }
        }
    }

    /**
     * Reads one frame.
     *
     * @return the frame, or null at end of stream between frames
     * @throws ProtocolViolationException if the frame is malformed (any descriptors received are closed)
     */
    Frame receive() {
        MemorySegment lengthField = buffer.asSlice(0, WireLayout.LENGTH_LENGTH);
        int[] first = socket.receiveFully(lengthField);
        if (first == null) {
            return null;
        }
        int length = lengthField.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN), 0);
        if (length < WireLayout.HEADER_LENGTH || length > WireLayout.MAX_FRAME_BYTES) {
            closeAll(first);
            throw new ProtocolViolationException("frame length " + Integer.toUnsignedString(length) + " is outside ["
                    + WireLayout.HEADER_LENGTH + ", " + WireLayout.MAX_FRAME_BYTES + "]");
        }
        MemorySegment body = buffer.asSlice(WireLayout.LENGTH_LENGTH, length);
        int[] rest;
        try {
            rest = socket.receiveFully(body);
        } catch (RuntimeException e) {
            closeAll(first);
            throw e;
        }
        if (rest == null) {
            closeAll(first);
            throw new ProtocolViolationException("end of stream inside a frame");
        }
        int[] fds = first;
        if (rest.length > 0) {
            fds = Arrays.copyOf(first, first.length + rest.length);
            System.arraycopy(rest, 0, fds, first.length, rest.length);
        }
        ByteBuffer bytes = ByteBuffer.wrap(body.toArray(ValueLayout.JAVA_BYTE));
        int type = Short.toUnsignedInt(bytes.getShort());
        int zero = Short.toUnsignedInt(bytes.getShort());
        long requestId = bytes.getLong();
        if (zero != 0) {
            closeAll(fds);
            throw new ProtocolViolationException("frame type " + type + ": reserved field is " + zero + ", not 0");
        }
        return new Frame(type, requestId, new Reader(bytes.slice().asReadOnlyBuffer()), fds);
    }

    private static void closeAll(int[] fds) {
        for (int fd : fds) {
            Linux.close(fd);
        }
    }

    /** Sends one frame, with descriptors (which stay open here). */
    void send(int type, long requestId, Writer payload, int... fds) {
        byte[] body = payload == null ? new byte[0] : payload.toArray();
        ByteBuffer frame = ByteBuffer.allocate(WireLayout.LENGTH_LENGTH + WireLayout.HEADER_LENGTH + body.length);
        frame.putInt(WireLayout.HEADER_LENGTH + body.length).putShort((short) type).putShort((short) 0)
                .putLong(requestId).put(body);
        synchronized (writeLock) {
            if (closed) {
                throw new dev.airlock.memory.sys.NativeCallException("send on a closed connection", dev.airlock.memory.sys.Errno.EBADF);
            }
            socket.send(frame.array(), fds);
        }
    }

    /** Wakes the reader (end of stream) and the peer. */
    void shutdown() {
        socket.shutdown();
    }

    /** Closes the socket; call once the reader has stopped. */
    @Override
    public void close() {
        synchronized (writeLock) {
            if (closed) {
                return;
            }
            closed = true;
            socket.close();
        }
        arena.close();
    }

    /** Builds a payload. */
    static final class Writer {
        private ByteBuffer bytes = ByteBuffer.allocate(64);

        private Writer ensure(int more) {
            if (bytes.remaining() < more) {
                ByteBuffer grown = ByteBuffer.allocate(Math.max(bytes.capacity() * 2, bytes.position() + more));
                bytes.flip();
                grown.put(bytes);
                bytes = grown;
            }
            return this;
        }

        Writer u8(int value) {
            ensure(1).bytes.put((byte) value);
            return this;
        }

        Writer i32(int value) {
            ensure(4).bytes.putInt(value);
            return this;
        }

        Writer i64(long value) {
            ensure(8).bytes.putLong(value);
            return this;
        }

        Writer string(String value) {
            byte[] utf8 = value.getBytes(StandardCharsets.UTF_8);
            if (utf8.length > WireLayout.MAX_STRING_BYTES) {
                utf8 = Arrays.copyOf(utf8, WireLayout.MAX_STRING_BYTES); // messages only; names are shorter
            }
            ensure(2 + utf8.length).bytes.putShort((short) utf8.length).put(utf8);
            return this;
        }

        Writer raw(byte[] value) {
            ensure(value.length).bytes.put(value);
            return this;
        }

        Writer bytes(byte[] value, int offset, int length) {
            ensure(4 + length).bytes.putInt(length).put(value, offset, length);
            return this;
        }

        byte[] toArray() {
            return Arrays.copyOf(bytes.array(), bytes.position());
        }
    }

    /** Reads a payload; every read is bounds-checked and a short payload is a protocol violation. */
    static final class Reader {
        private final ByteBuffer bytes;

        Reader(ByteBuffer bytes) {
            this.bytes = bytes;
        }

        int u8() {
            try {
                return Byte.toUnsignedInt(bytes.get());
            } catch (BufferUnderflowException e) {
                throw shortPayload();
            }
        }

        int i32() {
            try {
                return bytes.getInt();
            } catch (BufferUnderflowException e) {
                throw shortPayload();
            }
        }

        long i64() {
            try {
                return bytes.getLong();
            } catch (BufferUnderflowException e) {
                throw shortPayload();
            }
        }

        String string() {
            int length;
            try {
                length = Short.toUnsignedInt(bytes.getShort());
            } catch (BufferUnderflowException e) {
                throw shortPayload();
            }
            if (length > WireLayout.MAX_STRING_BYTES || length > bytes.remaining()) {
                throw new ProtocolViolationException("string of " + length + " bytes with " + bytes.remaining() + " left");
            }
            byte[] utf8 = new byte[length];
            bytes.get(utf8);
            return new String(utf8, StandardCharsets.UTF_8);
        }

        byte[] raw(int length) {
            if (length > bytes.remaining()) {
                throw shortPayload();
            }
            byte[] value = new byte[length];
            bytes.get(value);
            return value;
        }

        byte[] bytes(int maxLength) {
            int length = i32();
            if (length < 0 || length > maxLength || length > bytes.remaining()) {
                throw new ProtocolViolationException("byte string of " + length + " bytes (at most " + maxLength + ", "
                        + bytes.remaining() + " left)");
            }
            return raw(length);
        }

        /** Checks that nothing is left. */
        void end() {
            if (bytes.hasRemaining()) {
                throw new ProtocolViolationException(bytes.remaining() + " trailing bytes");
            }
        }

        private static ProtocolViolationException shortPayload() {
            return new ProtocolViolationException("payload too short");
        }
    }
}
