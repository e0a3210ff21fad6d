package dev.airlock.memory.sys;

import java.io.Serial;

/**
 * A Linux call failed. The message names the call, its arguments where they help, the errno
 * symbol and the C library's text for it, for example
 * {@code "mmap(fd=7, length=4096) failed: EINVAL (Invalid argument)"}.
 */
public final class NativeCallException extends RuntimeException {
    @Serial
    private static final long serialVersionUID = 1L;

    private final String call;
    private final int errno;

    /**
     * Creates the exception for a failed call.
     *
     * @param call  the call with its interesting arguments, for example {@code "eventfd(flags=0x80800)"}
     * @param errno the errno value the call left behind
     */
    public NativeCallException(String call, int errno) {
        super(call + " failed: " + Errno.name(errno) + " (" + Linux.strerror(errno) + ")");
        this.call = call;
        this.errno = errno;
    }

    /**
     * The call that failed, with its interesting arguments.
     *
     * @return the call description
     */
    public String call() {
        return call;
    }

    /**
     * The errno value.
     *
     * @return errno, for example {@link Errno#EAGAIN}
     */
    public int errno() {
        return errno;
    }
}
