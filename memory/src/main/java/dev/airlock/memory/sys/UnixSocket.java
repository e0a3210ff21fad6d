package dev.airlock.memory.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * A Unix domain stream socket that can pass file descriptors ({@code SCM_RIGHTS}) and tell who is
 * on the other end ({@code SO_PEERCRED}), which {@code java.nio} channels cannot. Used by the
 * multi-process hypervisor (memfds and eventfds handed to VMs) and by vhost-user (memory regions and
 * vring eventfds from QEMU).
 *
 * <p>Calls block the calling (platform) thread. A socket is used by one reader and one writer
 * thread at a time; {@link #shutdown()} wakes a thread blocked in {@link #accept()} or
 * {@link #receive}.
 *
 * <pre>
 * struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; }             110 bytes
 * struct iovec       { void *iov_base; size_t iov_len; }                          16 bytes
 * struct msghdr      { void *msg_name; socklen_t msg_namelen; (4 pad)
 *                      struct iovec *msg_iov; size_t msg_iovlen;
 *                      void *msg_control; size_t msg_controllen; int msg_flags; (4 pad)} 56 bytes
 * struct cmsghdr     { size_t cmsg_len; int cmsg_level; int cmsg_type; data[] }   16-byte header
 * struct ucred       { pid_t pid; uid_t uid; gid_t gid; }                         12 bytes
 * </pre>
 */
public final class UnixSocket implements AutoCloseable {
    /** The most descriptors one message may carry (Linux's SCM_MAX_FD is 253). */
    public static final int MAX_FDS = 32;

    private static final int AF_UNIX = 1;
    private static final int SOCK_STREAM = 1;
    private static final int SOCK_CLOEXEC = 0x80000;
    private static final int SOL_SOCKET = 1;
    private static final int SCM_RIGHTS = 1;
    private static final int SO_PEERCRED = 17;
    private static final int MSG_NOSIGNAL = 0x4000;
    private static final int MSG_CTRUNC = 0x8;
    private static final int MSG_CMSG_CLOEXEC = 0x40000000;
    private static final int SHUT_RDWR = 2;
    private static final int SUN_PATH_LENGTH = 108;

    private static final StructLayout SOCKADDR_UN = MemoryLayout.structLayout(
            JAVA_SHORT.withName("sun_family"), MemoryLayout.sequenceLayout(SUN_PATH_LENGTH, ValueLayout.JAVA_BYTE).withName("sun_path"));
    private static final StructLayout IOVEC = MemoryLayout.structLayout(ADDRESS.withName("iov_base"), JAVA_LONG.withName("iov_len"));
    private static final StructLayout MSGHDR = MemoryLayout.structLayout(
            ADDRESS.withName("msg_name"), JAVA_INT.withName("msg_namelen"), MemoryLayout.paddingLayout(4),
            ADDRESS.withName("msg_iov"), JAVA_LONG.withName("msg_iovlen"),
            ADDRESS.withName("msg_control"), JAVA_LONG.withName("msg_controllen"),
            JAVA_INT.withName("msg_flags"), MemoryLayout.paddingLayout(4));
    private static final long CMSG_HEADER_LENGTH = 16;
    private static final StructLayout UCRED = MemoryLayout.structLayout(
            JAVA_INT.withName("pid"), JAVA_INT.withName("uid"), JAVA_INT.withName("gid"));

    private static final long MSG_IOV_OFFSET = MSGHDR.byteOffset(groupElement("msg_iov"));
    private static final long MSG_IOVLEN_OFFSET = MSGHDR.byteOffset(groupElement("msg_iovlen"));
    private static final long MSG_CONTROL_OFFSET = MSGHDR.byteOffset(groupElement("msg_control"));
    private static final long MSG_CONTROLLEN_OFFSET = MSGHDR.byteOffset(groupElement("msg_controllen"));
    private static final long MSG_FLAGS_OFFSET = MSGHDR.byteOffset(groupElement("msg_flags"));

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE_LAYOUT.varHandle(groupElement("errno"));

    private static final MethodHandle SOCKET = downcall("socket", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle SOCKETPAIR = downcall("socketpair", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle BIND = downcall("bind", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle LISTEN = downcall("listen", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle ACCEPT4 = downcall("accept4", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    private static final MethodHandle CONNECT = downcall("connect", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle SENDMSG = downcall("sendmsg", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle RECVMSG = downcall("recvmsg", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle GETSOCKOPT = downcall("getsockopt",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle SHUTDOWN = downcall("shutdown", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));

    private final int fd;
    private final String description;
    private volatile boolean closed;

    private UnixSocket(int fd, String description) {
        this.fd = fd;
        this.description = description;
    }

    private static MethodHandle downcall(String name, FunctionDescriptor descriptor) {
        return LINKER.downcallHandle(LIBC.findOrThrow(name), descriptor, Linker.Option.captureCallState("errno"));
    }

    private static int errno(MemorySegment capture) {
        return (int) ERRNO.get(capture, 0L);
    }

    private static LinkageError linkageError(String call, Throwable t) {
        return new LinkageError(call + " downcall failed", t);
    }

    /**
     * Creates a socket bound to {@code path} and listening. An existing file at the path is not
     * removed: the caller decides whether a stale socket may be replaced.
     *
     * @param path    the socket path (at most 107 bytes)
     * @param backlog the listen backlog
     * @return the listening socket
     */
    public static UnixSocket listen(Path path, int backlog) {
        int fd = newSocket();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment address = sockaddr(arena, path);
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            if ((int) BIND.invokeExact(capture, fd, address, (int) SOCKADDR_UN.byteSize()) != 0) {
                throw new NativeCallException("bind(" + path + ")", errno(capture));
            }
            if ((int) LISTEN.invokeExact(capture, fd, backlog) != 0) {
                throw new NativeCallException("listen(" + path + ")", errno(capture));
            }
            return new UnixSocket(fd, "listen:" + path);
        } catch (NativeCallException | IllegalArgumentException e) {
            Linux.close(fd);
            throw e;
        } catch (Throwable t) {
            Linux.close(fd);
            throw linkageError("bind/listen", t);
        }
    }

    /**
     * Connects to a listening socket.
     *
     * @param path the socket path
     * @return the connected socket
     */
    public static UnixSocket connect(Path path) {
        int fd = newSocket();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment address = sockaddr(arena, path);
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            int rc;
            do {
                rc = (int) CONNECT.invokeExact(capture, fd, address, (int) SOCKADDR_UN.byteSize());
            } while (rc != 0 && errno(capture) == Errno.EINTR);
            if (rc != 0) {
                throw new NativeCallException("connect(" + path + ")", errno(capture));
            }
            return new UnixSocket(fd, "connect:" + path);
        } catch (NativeCallException | IllegalArgumentException e) {
            Linux.close(fd);
            throw e;
        } catch (Throwable t) {
            Linux.close(fd);
            throw linkageError("connect", t);
        }
    }

    /**
     * Creates a connected pair of sockets ({@code socketpair}).
     *
     * @return the two ends
     */
    public static UnixSocket[] pair() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment fds = arena.allocate(JAVA_INT, 2);
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            if ((int) SOCKETPAIR.invokeExact(capture, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
                throw new NativeCallException("socketpair(AF_UNIX, SOCK_STREAM)", errno(capture));
            }
            return new UnixSocket[] {
                new UnixSocket(fds.getAtIndex(JAVA_INT, 0), "pair:0"),
                new UnixSocket(fds.getAtIndex(JAVA_INT, 1), "pair:1")
            };
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw linkageError("socketpair", t);
        }
    }

    /**
     * Wraps a connected socket descriptor this process already has (inherited from a parent, say).
     * Closing the object closes the descriptor.
     *
     * @param fd the descriptor
     * @return the socket
     */
    public static UnixSocket adopt(int fd) {
        return new UnixSocket(fd, "fd:" + fd);
    }

    private static int newSocket() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            int fd = (int) SOCKET.invokeExact(capture, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                throw new NativeCallException("socket(AF_UNIX, SOCK_STREAM)", errno(capture));
            }
            return fd;
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw linkageError("socket", t);
        }
    }

    private static MemorySegment sockaddr(Arena arena, Path path) {
        byte[] bytes = path.toString().getBytes(StandardCharsets.UTF_8);
        if (bytes.length >= SUN_PATH_LENGTH) {
            throw new IllegalArgumentException("unix socket path longer than " + (SUN_PATH_LENGTH - 1) + " bytes: " + path);
        }
        MemorySegment address = arena.allocate(SOCKADDR_UN);
        address.set(JAVA_SHORT, 0, (short) AF_UNIX);
        MemorySegment.copy(bytes, 0, address, ValueLayout.JAVA_BYTE, 2, bytes.length);
        return address;
    }

    /**
     * The descriptor.
     *
     * @return the socket's fd
     */
    public int fd() {
        return fd;
    }

    /**
     * Waits for a connection on a listening socket.
     *
     * @return the connected socket
     * @throws NativeCallException if the socket was shut down or the call failed
     */
    public UnixSocket accept() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            int client;
            do {
                client = (int) ACCEPT4.invokeExact(capture, fd, MemorySegment.NULL, MemorySegment.NULL, SOCK_CLOEXEC);
            } while (client < 0 && errno(capture) == Errno.EINTR && !closed);
            if (client < 0) {
                throw new NativeCallException("accept(" + description + ")", errno(capture));
            }
            return new UnixSocket(client, description + ":conn" + client);
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw linkageError("accept", t);
        }
    }

    /**
     * Sends bytes and, with the first byte, descriptors. Sends everything: a short write is
     * continued (without the descriptors, which went with the first part).
     *
     * @param data the bytes, at least one
     * @param fds  descriptors to pass (at most {@link #MAX_FDS}); they stay open in this process
     */
    public void send(MemorySegment data, int... fds) {
        Objects.requireNonNull(data, "data");
        if (data.byteSize() == 0) {
            throw new IllegalArgumentException("a message carries at least one byte");
        }
        if (fds.length > MAX_FDS) {
            throw new IllegalArgumentException("at most " + MAX_FDS + " descriptors per message: " + fds.length);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            MemorySegment iov = arena.allocate(IOVEC);
            MemorySegment msg = arena.allocate(MSGHDR);
            MemorySegment staged = arena.allocate(data.byteSize());
            staged.copyFrom(data);
            msg.set(ADDRESS, MSG_IOV_OFFSET, iov);
            msg.set(JAVA_LONG, MSG_IOVLEN_OFFSET, 1L);
            if (fds.length > 0) {
                long controlLength = CMSG_HEADER_LENGTH + align8(4L * fds.length);
                MemorySegment control = arena.allocate(controlLength, 8);
                control.set(JAVA_LONG, 0, CMSG_HEADER_LENGTH + 4L * fds.length); // cmsg_len = CMSG_LEN(n * 4)
                control.set(JAVA_INT, 8, SOL_SOCKET);
                control.set(JAVA_INT, 12, SCM_RIGHTS);
                for (int i = 0; i < fds.length; i++) {
                    control.set(JAVA_INT, CMSG_HEADER_LENGTH + 4L * i, fds[i]);
                }
                msg.set(ADDRESS, MSG_CONTROL_OFFSET, control);
                msg.set(JAVA_LONG, MSG_CONTROLLEN_OFFSET, controlLength);
            }
            long sent = 0;
            while (sent < staged.byteSize()) {
                iov.set(ADDRESS, 0, staged.asSlice(sent));
                iov.set(JAVA_LONG, 8, staged.byteSize() - sent);
                long n = (long) SENDMSG.invokeExact(capture, fd, msg, MSG_NOSIGNAL);
                if (n < 0) {
                    if (errno(capture) == Errno.EINTR) {
                        continue;
                    }
                    throw new NativeCallException("sendmsg(" + description + ", " + staged.byteSize() + " bytes, "
                            + fds.length + " fds)", errno(capture));
                }
                sent += n;
                msg.set(ADDRESS, MSG_CONTROL_OFFSET, MemorySegment.NULL); // descriptors go with the first byte only
                msg.set(JAVA_LONG, MSG_CONTROLLEN_OFFSET, 0L);
            }
        } catch (NativeCallException | IllegalArgumentException e) {
            throw e;
        } catch (Throwable t) {
            throw linkageError("sendmsg", t);
        }
    }

    /**
     * Sends bytes and descriptors.
     *
     * @param data the bytes, at least one
     * @param fds  descriptors to pass
     */
    public void send(byte[] data, int... fds) {
        send(MemorySegment.ofArray(data), fds);
    }

    /**
     * What one {@link #receive} call read.
     *
     * @param byteCount how many bytes were read into the buffer; 0 means the peer closed the connection
     * @param fds       descriptors that arrived with them (now open in this process, close-on-exec;
     *                  the receiver owns them)
     */
    public record Received(int byteCount, int[] fds) {
        /**
         * Whether the peer closed its end.
         *
         * @return true on end of stream
         */
        public boolean endOfStream() {
            return byteCount == 0;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Received r && r.byteCount == byteCount && Arrays.equals(r.fds, fds);
        }

        @Override
        public int hashCode() {
            return 31 * byteCount + Arrays.hashCode(fds);
        }

        @Override
        public String toString() {
            return "Received[byteCount=" + byteCount + ", fds=" + Arrays.toString(fds) + "]";
        }
    }

    /**
     * Reads up to {@code buffer.byteSize()} bytes (at least one, blocking) and any descriptors that
     * came with them. If more descriptors arrived than fit ({@link #MAX_FDS}), the ones received are
     * closed and the call fails: a peer that sends too many is misbehaving.
     *
     * @param buffer where to put the bytes (a native segment)
     * @return what was read
     */
    public Received receive(MemorySegment buffer) {
        if (!buffer.isNative() || buffer.byteSize() == 0) {
            throw new IllegalArgumentException("receive needs a non-empty native buffer");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            MemorySegment iov = arena.allocate(IOVEC);
            MemorySegment msg = arena.allocate(MSGHDR);
            long controlLength = CMSG_HEADER_LENGTH + align8(4L * MAX_FDS);
            MemorySegment control = arena.allocate(controlLength, 8);
            iov.set(ADDRESS, 0, buffer);
            iov.set(JAVA_LONG, 8, buffer.byteSize());
            msg.set(ADDRESS, MSG_IOV_OFFSET, iov);
            msg.set(JAVA_LONG, MSG_IOVLEN_OFFSET, 1L);
            msg.set(ADDRESS, MSG_CONTROL_OFFSET, control);
            msg.set(JAVA_LONG, MSG_CONTROLLEN_OFFSET, controlLength);
            long n;
            do {
                n = (long) RECVMSG.invokeExact(capture, fd, msg, MSG_CMSG_CLOEXEC);
            } while (n < 0 && errno(capture) == Errno.EINTR && !closed);
            if (n < 0) {
                throw new NativeCallException("recvmsg(" + description + ")", errno(capture));
            }
            int[] fds = parseRights(control, msg.get(JAVA_LONG, MSG_CONTROLLEN_OFFSET));
            if ((msg.get(JAVA_INT, MSG_FLAGS_OFFSET) & MSG_CTRUNC) != 0) {
                for (int received : fds) {
                    Linux.close(received);
                }
                throw new NativeCallException("recvmsg(" + description + "): more than " + MAX_FDS
                        + " descriptors in one message (MSG_CTRUNC)", Errno.EINVAL);
            }
            return new Received((int) n, fds);
        } catch (NativeCallException | IllegalArgumentException e) {
            throw e;
        } catch (Throwable t) {
            throw linkageError("recvmsg", t);
        }
    }

    private static int[] parseRights(MemorySegment control, long controlLength) {
        int[] fds = new int[0];
        long offset = 0;
        while (controlLength - offset >= CMSG_HEADER_LENGTH) {
            long cmsgLength = control.get(JAVA_LONG, offset);
            if (cmsgLength < CMSG_HEADER_LENGTH || cmsgLength > controlLength - offset) {
                break;
            }
            if (control.get(JAVA_INT, offset + 8) == SOL_SOCKET && control.get(JAVA_INT, offset + 12) == SCM_RIGHTS) {
                int count = (int) ((cmsgLength - CMSG_HEADER_LENGTH) / 4);
                int start = fds.length;
                fds = Arrays.copyOf(fds, start + count);
                for (int i = 0; i < count; i++) {
                    fds[start + i] = control.get(JAVA_INT, offset + CMSG_HEADER_LENGTH + 4L * i);
                }
            }
            offset += align8(cmsgLength);
        }
        return fds;
    }

    /**
     * Reads exactly {@code buffer.byteSize()} bytes, collecting any descriptors that arrive.
     *
     * @param buffer where to put the bytes
     * @return the descriptors received, or {@code null} if the peer closed before the first byte
     * @throws NativeCallException if the peer closed in the middle (ECONNRESET)
     */
    public int[] receiveFully(MemorySegment buffer) {
        int[] fds = new int[0];
        long read = 0;
        while (read < buffer.byteSize()) {
            Received r = receive(buffer.asSlice(read));
            if (r.endOfStream()) {
                for (int received : fds) {
                    Linux.close(received);
                }
                if (read == 0) {
                    return null;
                }
                throw new NativeCallException("recvmsg(" + description + "): peer closed after " + read + " of "
                        + buffer.byteSize() + " bytes", Errno.ECONNRESET);
            }
            if (r.fds().length > 0) {
                int start = fds.length;
                fds = Arrays.copyOf(fds, start + r.fds().length);
                System.arraycopy(r.fds(), 0, fds, start, r.fds().length);
            }
            read += r.byteCount();
        }
        return fds;
    }

    /**
     * The credentials of the peer process, as the kernel recorded them at connect time.
     *
     * @return pid, uid and gid
     */
    public PeerCredentials peerCredentials() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            MemorySegment ucred = arena.allocate(UCRED);
            MemorySegment length = arena.allocate(JAVA_INT);
            length.set(JAVA_INT, 0, (int) UCRED.byteSize());
            if ((int) GETSOCKOPT.invokeExact(capture, fd, SOL_SOCKET, SO_PEERCRED, ucred, length) != 0) {
                throw new NativeCallException("getsockopt(" + description + ", SO_PEERCRED)", errno(capture));
            }
            return new PeerCredentials(ucred.get(JAVA_INT, 0), ucred.get(JAVA_INT, 4), ucred.get(JAVA_INT, 8));
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw linkageError("getsockopt", t);
        }
    }

    /**
     * The identity of the process at the other end of a connection.
     *
     * @param pid its process id
     * @param uid its user id
     * @param gid its group id
     */
    public record PeerCredentials(int pid, int uid, int gid) {
    }

    /** Shuts the socket down in both directions, waking threads blocked on it; idempotent. */
    public void shutdown() {
        if (closed) {
            return; // the descriptor number may belong to something else by now
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = arena.allocate(CAPTURE_LAYOUT);
            int rc = (int) SHUTDOWN.invokeExact(capture, fd, SHUT_RDWR);
            if (rc != 0 && errno(capture) != 107 /* ENOTCONN */ && errno(capture) != Errno.EINVAL) {
                throw new NativeCallException("shutdown(" + description + ")", errno(capture));
            }
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw linkageError("shutdown", t);
        }
    }

    /** Closes the descriptor; idempotent. Shut down first to wake blocked threads. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Linux.close(fd);
        }
    }

    private static long align8(long n) {
        return (n + 7) & ~7L;
    }

    @Override
    public String toString() {
        return "UnixSocket(" + description + ")";
    }
}
