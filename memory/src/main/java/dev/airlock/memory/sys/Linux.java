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

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The Linux calls Airlock needs, bound once through {@code java.lang.foreign}: memfd, mmap, eventfd,
 * futex, read/write/close. Each wrapper captures {@code errno} in the same downcall and turns a
 * failure into a {@link NativeCallException} that says which call failed and why.
 *
 * <p>Only this package uses restricted FFM methods; the rest of Airlock works on the segments it
 * returns.
 */
public final class Linux {
    /** {@code memfd_create} flag: close on exec. */
    public static final int MFD_CLOEXEC = 0x1;
    /** {@code memfd_create} flag: allow sealing. */
    public static final int MFD_ALLOW_SEALING = 0x2;
    /** {@code mmap} protection: readable. */
    public static final int PROT_READ = 0x1;
    /** {@code mmap} protection: writable. */
    public static final int PROT_WRITE = 0x2;
    /** {@code mmap} flag: changes are shared with every other mapping of the same file. */
    public static final int MAP_SHARED = 0x01;
    /** {@code mmap} flag: a private copy-on-write mapping. */
    public static final int MAP_PRIVATE = 0x02;
    /** {@code mmap} flag: not backed by a file. */
    public static final int MAP_ANONYMOUS = 0x20;
    /** {@code mmap} flag: do not reserve swap space. */
    public static final int MAP_NORESERVE = 0x4000;
    /** {@code eventfd} flag: semaphore semantics. */
    public static final int EFD_SEMAPHORE = 0x1;
    /** {@code eventfd} flag: non-blocking. */
    public static final int EFD_NONBLOCK = 0x800;
    /** {@code eventfd} flag: close on exec. */
    public static final int EFD_CLOEXEC = 0x80000;
    /** {@code open} flag: read only. */
    public static final int O_RDONLY = 0;
    /** {@code open} flag: read and write. */
    public static final int O_RDWR = 2;
    /** {@code open} flag: close on exec (the same value on x86-64 and aarch64). */
    public static final int O_CLOEXEC = 0x80000;
    /** {@code fallocate} mode: do not change the file size. */
    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    /** {@code fallocate} mode: deallocate the range (with {@link #FALLOC_FL_KEEP_SIZE}); it reads back as zeros. */
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    /** {@code fallocate} mode: zero the range, keeping (or allocating) its blocks. */
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;
    /** {@code flock} operation: a shared lock. */
    public static final int LOCK_SH = 1;
    /** {@code flock} operation: an exclusive lock. */
    public static final int LOCK_EX = 2;
    /** {@code flock} flag: fail instead of waiting for a conflicting lock. */
    public static final int LOCK_NB = 4;
    /** {@code flock} operation: release the lock. */
    public static final int LOCK_UN = 8;
    /** errno: the operation is not supported (by this file system, say); not in {@link Errno}. */
    public static final int EOPNOTSUPP = 95;

    /** {@code poll} event: there is data to read. */
    public static final short POLLIN = 0x1;
    /** {@code poll} event: an error condition (output only). */
    public static final short POLLERR = 0x8;
    /** {@code poll} event: hang up (output only). */
    public static final short POLLHUP = 0x10;
    /** {@code poll} event: the descriptor is not open (output only). */
    public static final short POLLNVAL = 0x20;
    /** The size of one {@code struct pollfd { int fd; short events; short revents; }}. */
    public static final long POLLFD_LENGTH = 8;

    /** The futex syscall number: 202 on x86-64, 98 on aarch64 (the generic table). */
    private static final long SYS_FUTEX = "aarch64".equals(System.getProperty("os.arch")) ? 98 : 202;
    /** FUTEX_WAIT without FUTEX_PRIVATE_FLAG: futex words may live in memory shared between processes. */
    private static final int FUTEX_WAIT = 0;
    private static final int FUTEX_WAKE = 1;
    private static final long MAP_FAILED = -1L;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");

    /** struct timespec { time_t tv_sec; long tv_nsec; } */
    private static final StructLayout TIMESPEC = MemoryLayout.structLayout(
            JAVA_LONG.withName("tv_sec"), JAVA_LONG.withName("tv_nsec"));

    private static final MethodHandle MEMFD_CREATE = downcall("memfd_create", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle FTRUNCATE = downcall("ftruncate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MMAP = downcall("mmap",
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MUNMAP = downcall("munmap", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle CLOSE = downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle READ = downcall("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle WRITE = downcall("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle EVENTFD = downcall("eventfd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle POLL = downcall("poll", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle LSEEK = downcall("lseek", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    /** int open(const char *path, int flags, ...): the mode is passed as the variadic argument. */
    private static final MethodHandle OPEN = LINKER.downcallHandle(LIBC.findOrThrow("open"),
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(2), CAPTURE_ERRNO);
    private static final MethodHandle FALLOCATE = downcall("fallocate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle FLOCK = downcall("flock", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle GETPID = LINKER.downcallHandle(LIBC.findOrThrow("getpid"), FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle STRERROR = LINKER.downcallHandle(LIBC.findOrThrow("strerror"), FunctionDescriptor.of(ADDRESS, JAVA_INT));
    /** long syscall(long number, ...): the futex call has no glibc wrapper. */
    private static final MethodHandle SYSCALL_FUTEX = LINKER.downcallHandle(LIBC.findOrThrow("syscall"),
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT),
            Linker.Option.firstVariadicArg(1), CAPTURE_ERRNO);

    /** One errno capture buffer per thread, so a wrapper allocates nothing per call. */
    private static final ThreadLocal<MemorySegment> CAPTURE = ThreadLocal.withInitial(
            () -> Arena.ofAuto().allocate(CAPTURE_LAYOUT));
    /** One eventfd counter buffer per thread. */
    private static final ThreadLocal<MemorySegment> COUNTER = ThreadLocal.withInitial(
            () -> Arena.ofAuto().allocate(JAVA_LONG));
    /** One timespec per thread for futex timeouts. */
    private static final ThreadLocal<MemorySegment> TIMEOUT = ThreadLocal.withInitial(
            () -> Arena.ofAuto().allocate(TIMESPEC));

    private Linux() {
    }

    private static MethodHandle downcall(String name, FunctionDescriptor descriptor) {
        return LINKER.downcallHandle(LIBC.findOrThrow(name), descriptor, CAPTURE_ERRNO);
    }

    private static int errno(MemorySegment capture) {
        return (int) ERRNO.get(capture, 0L);
    }

    /**
     * The C library's description of an errno value.
     *
     * @param errno the value
     * @return the text of {@code strerror(errno)}
     */
    public static String strerror(int errno) {
        try {
            MemorySegment text = (MemorySegment) STRERROR.invokeExact(errno);
            return text.reinterpret(256).getString(0);
        } catch (Throwable t) {
            throw new LinkageError("strerror downcall failed", t);
        }
    }

    /**
     * The process id of this process.
     *
     * @return {@code getpid()}
     */
    public static int getpid() {
        try {
            return (int) GETPID.invokeExact();
        } catch (Throwable t) {
            throw new LinkageError("getpid downcall failed", t);
        }
    }

    /**
     * Creates an anonymous memory file ({@code memfd_create}) of the given size.
     *
     * @param name        a name for {@code /proc/PID/fd} and {@code /proc/PID/maps}
     * @param sizeBytes   the size to truncate it to
     * @param flags       {@link #MFD_CLOEXEC} and friends
     * @return the file descriptor
     */
    public static int memfdCreate(String name, long sizeBytes, int flags) {
        int fd;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment capture = CAPTURE.get();
            fd = (int) MEMFD_CREATE.invokeExact(capture, arena.allocateFrom(name), flags);
            if (fd < 0) {
                throw new NativeCallException("memfd_create(\"" + name + "\")", errno(capture));
            }
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("memfd_create downcall failed", t);
        }
        try {
            ftruncate(fd, sizeBytes);
        } catch (RuntimeException e) {
            close(fd);
            throw e;
        }
        return fd;
    }

    /**
     * Sets the size of a file ({@code ftruncate}).
     *
     * @param fd        the file descriptor
     * @param sizeBytes the new size
     */
    public static void ftruncate(int fd, long sizeBytes) {
        try {
            MemorySegment capture = CAPTURE.get();
            int rc = (int) FTRUNCATE.invokeExact(capture, fd, sizeBytes);
            if (rc != 0) {
                throw new NativeCallException("ftruncate(fd=" + fd + ", length=" + sizeBytes + ")", errno(capture));
            }
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("ftruncate downcall failed", t);
        }
    }

    /**
     * The size of a file, from {@code lseek(fd, 0, SEEK_END)}.
     *
     * @param fd the file descriptor
     * @return its size in bytes
     */
    public static long fileSize(int fd) {
        try {
            MemorySegment capture = CAPTURE.get();
            long size = (long) LSEEK.invokeExact(capture, fd, 0L, 2 /* SEEK_END */);
            if (size < 0) {
                throw new NativeCallException("lseek(fd=" + fd + ", SEEK_END)", errno(capture));
            }
            return size;
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("lseek downcall failed", t);
        }
    }

    /**
     * Maps memory ({@code mmap}) and returns a segment of exactly {@code lengthBytes} whose
     * lifetime is that of {@code arena}: closing the arena unmaps it.
     *
     * @param lengthBytes the length of the mapping
     * @param prot        {@link #PROT_READ} | {@link #PROT_WRITE}
     * @param flags       {@link #MAP_SHARED}, {@link #MAP_PRIVATE}, {@link #MAP_ANONYMOUS}, ...
     * @param fd          the file descriptor, or -1 for an anonymous mapping
     * @param offset      the offset into the file
     * @param arena       the arena that owns the mapping
     * @return the mapped segment
     */
    public static MemorySegment mmap(long lengthBytes, int prot, int flags, int fd, long offset, Arena arena) {
        if (lengthBytes <= 0) {
            throw new IllegalArgumentException("mmap length must be positive: " + lengthBytes);
        }
        long address;
        try {
            MemorySegment capture = CAPTURE.get();
            address = (long) MMAP.invokeExact(capture, 0L, lengthBytes, prot, flags, fd, offset);
            if (address == MAP_FAILED) {
                throw new NativeCallException("mmap(fd=" + fd + ", length=" + lengthBytes + ", offset=" + offset
                        + ", prot=0x" + Integer.toHexString(prot) + ", flags=0x" + Integer.toHexString(flags) + ")",
                        errno(capture));
            }
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("mmap downcall failed", t);
        }
        return MemorySegment.ofAddress(address).reinterpret(lengthBytes, arena, s -> munmap(address, lengthBytes));
    }

    private static void munmap(long address, long lengthBytes) {
        try {
            MemorySegment capture = CAPTURE.get();
            int rc = (int) MUNMAP.invokeExact(capture, address, lengthBytes);
            if (rc != 0) {
                throw new NativeCallException("munmap(length=" + lengthBytes + ")", errno(capture));
            }
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("munmap downcall failed", t);
        }
    }

    /**
     * Closes a file descriptor.
     *
     * @param fd the descriptor
     */
    public static void close(int fd) {
        try {
            MemorySegment capture = CAPTURE.get();
            int rc = (int) CLOSE.invokeExact(capture, fd);
            if (rc != 0) {
                throw new NativeCallException("close(fd=" + fd + ")", errno(capture));
            }
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("close downcall failed", t);
        }
    }

    /**
     * Creates an eventfd.
     *
     * @param initialValue the initial counter
     * @param flags        {@link #EFD_CLOEXEC}, {@link #EFD_NONBLOCK}, {@link #EFD_SEMAPHORE}
     * @return the file descriptor
     */
    public static int eventfd(int initialValue, int flags) {
        try {
            MemorySegment capture = CAPTURE.get();
            int fd = (int) EVENTFD.invokeExact(capture, initialValue, flags);
            if (fd < 0) {
                throw new NativeCallException("eventfd(flags=0x" + Integer.toHexString(flags) + ")", errno(capture));
            }
            return fd;
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("eventfd downcall failed", t);
        }
    }

    /**
     * Adds to an eventfd's counter (a write of 8 bytes), waking a reader.
     *
     * @param fd    the eventfd
     * @param value the amount to add, at least 1
     */
    public static void eventfdWrite(int fd, long value) {
        MemorySegment counter = COUNTER.get();
        counter.set(JAVA_LONG, 0, value);
        while (true) {
            try {
                MemorySegment capture = CAPTURE.get();
                long n = (long) WRITE.invokeExact(capture, fd, counter, 8L);
                if (n == 8) {
                    return;
                }
                int errno = errno(capture);
                if (n < 0 && errno == Errno.EINTR) {
                    continue;
                }
                throw new NativeCallException("write(eventfd=" + fd + ")", n < 0 ? errno : Errno.EINVAL);
            } catch (NativeCallException e) {
                throw e;
            } catch (Throwable t) {
                throw new LinkageError("write downcall failed", t);
            }
        }
    }

    /**
     * Reads and clears an eventfd's counter (blocking unless the fd is non-blocking).
     *
     * @param fd the eventfd
     * @return the counter value, or 0 if the fd is non-blocking and the counter was zero
     */
    public static long eventfdRead(int fd) {
        MemorySegment counter = COUNTER.get();
        while (true) {
            try {
                MemorySegment capture = CAPTURE.get();
                long n = (long) READ.invokeExact(capture, fd, counter, 8L);
                if (n == 8) {
                    return counter.get(JAVA_LONG, 0);
                }
                int errno = errno(capture);
                if (n < 0 && errno == Errno.EINTR) {
                    continue;
                }
                if (n < 0 && errno == Errno.EAGAIN) {
                    return 0;
                }
                throw new NativeCallException("read(eventfd=" + fd + ")", n < 0 ? errno : Errno.EINVAL);
            } catch (NativeCallException e) {
                throw e;
            } catch (Throwable t) {
                throw new LinkageError("read downcall failed", t);
            }
        }
    }

    /**
     * Sleeps while the 32-bit word at {@code word} equals {@code expected} ({@code FUTEX_WAIT}).
     * The word may be in a {@code MAP_SHARED} mapping shared with another process, so the
     * non-private futex operation is used.
     *
     * @param word      a 4-byte aligned segment of at least 4 bytes
     * @param expected  the value the caller saw
     * @param timeoutNs the longest wait, or a negative value for none
     * @return {@code true} if woken (or the value had already changed), {@code false} on timeout
     */
    public static boolean futexWait(MemorySegment word, int expected, long timeoutNs) {
        checkFutexWord(word);
        MemorySegment timeout = MemorySegment.NULL;
        if (timeoutNs >= 0) {
            timeout = TIMEOUT.get();
            timeout.set(JAVA_LONG, 0, timeoutNs / 1_000_000_000L);
            timeout.set(JAVA_LONG, 8, timeoutNs % 1_000_000_000L);
        }
        try {
            MemorySegment capture = CAPTURE.get();
            long rc = (long) SYSCALL_FUTEX.invokeExact(capture, SYS_FUTEX, word, FUTEX_WAIT, expected, timeout,
                    MemorySegment.NULL, 0);
            if (rc == 0) {
                return true;
            }
            int errno = errno(capture);
            return switch (errno) {
                case Errno.EAGAIN, Errno.EINTR -> true;
                case Errno.ETIMEDOUT -> false;
                default -> throw new NativeCallException("futex(FUTEX_WAIT)", errno);
            };
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("futex downcall failed", t);
        }
    }

    /**
     * Wakes up to {@code count} waiters on the word ({@code FUTEX_WAKE}).
     *
     * @param word  the futex word
     * @param count how many waiters to wake
     * @return how many were woken
     */
    public static int futexWake(MemorySegment word, int count) {
        checkFutexWord(word);
        try {
            MemorySegment capture = CAPTURE.get();
            long rc = (long) SYSCALL_FUTEX.invokeExact(capture, SYS_FUTEX, word, FUTEX_WAKE, count,
                    MemorySegment.NULL, MemorySegment.NULL, 0);
            if (rc < 0) {
                throw new NativeCallException("futex(FUTEX_WAKE)", errno(capture));
            }
            return (int) rc;
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("futex downcall failed", t);
        }
    }

    private static void checkFutexWord(MemorySegment word) {
        if (!word.isNative() || word.byteSize() < 4 || (word.address() & 3) != 0) {
            throw new IllegalArgumentException("a futex word must be a 4-byte aligned native segment: " + word);
        }
    }

    /**
     * Opens an existing file ({@code open} without {@code O_CREAT}), retrying on {@code EINTR}.
     *
     * @param path  the file
     * @param flags {@link #O_RDONLY} or {@link #O_RDWR}, with {@link #O_CLOEXEC} and friends;
     *              {@code O_CREAT} is refused (no mode is given)
     * @return the file descriptor
     * @throws IllegalArgumentException if {@code flags} holds {@code O_CREAT} or {@code O_TMPFILE}
     */
    public static int open(String path, int flags) {
        if ((flags & 0x40 /* O_CREAT */) != 0 || (flags & 0x400000 /* __O_TMPFILE */) != 0) {
            throw new IllegalArgumentException("open(" + path + "): O_CREAT and O_TMPFILE need a mode; not supported");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cPath = arena.allocateFrom(path);
            while (true) {
                MemorySegment capture = CAPTURE.get();
                int fd = (int) OPEN.invokeExact(capture, cPath, flags, 0);
                if (fd >= 0) {
                    return fd;
                }
                int errno = errno(capture);
                if (errno != Errno.EINTR) {
                    throw new NativeCallException("open(\"" + path + "\", flags=0x" + Integer.toHexString(flags) + ")", errno);
                }
            }
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("open downcall failed", t);
        }
    }

    /**
     * Manipulates the allocated space of a file ({@code fallocate}), retrying on {@code EINTR}.
     *
     * @param fd     the file descriptor, open for writing
     * @param mode   0 (allocate), or {@link #FALLOC_FL_PUNCH_HOLE} or {@link #FALLOC_FL_ZERO_RANGE}
     *               with {@link #FALLOC_FL_KEEP_SIZE}
     * @param offset where the range starts, in bytes
     * @param len    its length in bytes, at least 1
     * @throws NativeCallException if the call fails, for example with {@link #EOPNOTSUPP} when the
     *                             file system does not support the mode
     */
    public static void fallocate(int fd, int mode, long offset, long len) {
        try {
            while (true) {
                MemorySegment capture = CAPTURE.get();
                int rc = (int) FALLOCATE.invokeExact(capture, fd, mode, offset, len);
                if (rc == 0) {
                    return;
                }
                int errno = errno(capture);
                if (errno != Errno.EINTR) {
                    throw new NativeCallException("fallocate(fd=" + fd + ", mode=0x" + Integer.toHexString(mode)
                            + ", offset=" + offset + ", len=" + len + ")", errno);
                }
            }
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("fallocate downcall failed", t);
        }
    }

    /**
     * Applies or removes an advisory lock on an open file ({@code flock}), retrying on {@code EINTR}.
     * The lock belongs to the open file description, so unlike {@code fcntl} record locks (and
     * {@link java.nio.channels.FileChannel#tryLock}) closing another descriptor of the same file in
     * this process does not release it, and two descriptors opened separately in one process
     * conflict with each other.
     *
     * @param fd        the file descriptor
     * @param operation {@link #LOCK_SH}, {@link #LOCK_EX} or {@link #LOCK_UN}, optionally with {@link #LOCK_NB}
     * @return true if done; false if {@link #LOCK_NB} was given and a conflicting lock is held
     */
    public static boolean flock(int fd, int operation) {
        try {
            while (true) {
                MemorySegment capture = CAPTURE.get();
                int rc = (int) FLOCK.invokeExact(capture, fd, operation);
                if (rc == 0) {
                    return true;
                }
                int errno = errno(capture);
                if (errno == Errno.EAGAIN && (operation & LOCK_NB) != 0) {
                    return false;
                }
                if (errno != Errno.EINTR) {
                    throw new NativeCallException("flock(fd=" + fd + ", operation=" + operation + ")", errno);
                }
            }
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("flock downcall failed", t);
        }
    }

    /**
     * Waits until one of the descriptors is ready ({@code poll}). {@code fds} holds {@code count}
     * {@code struct pollfd} entries of {@link #POLLFD_LENGTH} bytes: {@code int fd} at offset 0,
     * {@code short events} at 4, {@code short revents} at 6 (written by the kernel).
     *
     * @param fds       a native segment of at least {@code count * POLLFD_LENGTH} bytes
     * @param count     how many entries
     * @param timeoutMs the longest wait in milliseconds, or -1 for none
     * @return how many entries have a non-zero {@code revents}; 0 on timeout or when interrupted (EINTR)
     */
    public static int poll(MemorySegment fds, int count, int timeoutMs) {
        if (!fds.isNative() || count < 0 || fds.byteSize() < count * POLLFD_LENGTH) {
            throw new IllegalArgumentException("poll needs a native segment of " + count + " pollfd entries: " + fds);
        }
        try {
            MemorySegment capture = CAPTURE.get();
            int rc = (int) POLL.invokeExact(capture, fds, (long) count, timeoutMs);
            if (rc >= 0) {
                return rc;
            }
            int errno = errno(capture);
            if (errno == Errno.EINTR) {
                return 0;
            }
            throw new NativeCallException("poll(" + count + " fds)", errno);
        } catch (NativeCallException e) {
            throw e;
        } catch (Throwable t) {
            throw new LinkageError("poll downcall failed", t);
        }
    }
}
