package dev.airlock.memory.sys;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class LinuxTest {
    @Test
    void shouldNameTheCallAndTheErrnoWhenACallFails() {
        NativeCallException e = assertThrows(NativeCallException.class, () -> Linux.close(987_654));
        assertEquals(Errno.EBADF, e.errno());
        assertEquals("close(fd=987654) failed: EBADF (Bad file descriptor)", e.getMessage());
    }

    @Test
    void shouldReportAFailedMmap() {
        try (Arena arena = Arena.ofConfined()) {
            NativeCallException e = assertThrows(NativeCallException.class,
                    () -> Linux.mmap(4096, Linux.PROT_READ, Linux.MAP_SHARED, 987_654, 0, arena));
            assertTrue(e.getMessage().startsWith("mmap(fd=987654, length=4096"), e.getMessage());
            assertTrue(e.getMessage().contains("EBADF"), e.getMessage());
        }
    }

    @Test
    void shouldShowAMemfdInProcMaps() throws Exception {
        int fd = Linux.memfdCreate("airlock-test-maps", 8192, Linux.MFD_CLOEXEC);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = Linux.mmap(8192, Linux.PROT_READ | Linux.PROT_WRITE, Linux.MAP_SHARED, fd, 0, arena);
            m.set(ValueLayout.JAVA_BYTE, 8191, (byte) 7);
            assertEquals(8192, Linux.fileSize(fd));
            String maps = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/self/maps"));
            assertTrue(maps.contains("/memfd:airlock-test-maps"), "memfd mapping not in /proc/self/maps");
        } finally {
            Linux.close(fd);
        }
    }

    @Test
    void shouldCountAndClearAnEventfd() {
        int fd = Linux.eventfd(0, Linux.EFD_CLOEXEC | Linux.EFD_NONBLOCK);
        try {
            assertEquals(0, Linux.eventfdRead(fd));
            Linux.eventfdWrite(fd, 1);
            Linux.eventfdWrite(fd, 4);
            assertEquals(5, Linux.eventfdRead(fd));
            assertEquals(0, Linux.eventfdRead(fd));
        } finally {
            Linux.close(fd);
        }
    }

    @Test
    void shouldWakeAFutexWaiterAndTimeOut() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment word = arena.allocate(ValueLayout.JAVA_INT);
            assertFalse(Linux.futexWait(word, 0, 1_000_000), "nobody wakes: the wait times out");
            assertTrue(Linux.futexWait(word, 1, 1_000_000), "the value differs: returns at once");

            CountDownLatch waiting = new CountDownLatch(1);
            AtomicBoolean woken = new AtomicBoolean();
            Thread waiter = Thread.ofPlatform().start(() -> {
                waiting.countDown();
                while (word.get(ValueLayout.JAVA_INT, 0) == 0) {
                    Linux.futexWait(word, 0, 5_000_000_000L);
                }
                woken.set(true);
            });
            waiting.await();
            word.set(ValueLayout.JAVA_INT, 0, 1);
            Linux.futexWake(word, 1);
            waiter.join(5000);
            assertTrue(woken.get());
        }
    }

    @Test
    void rejectsAMisalignedFutexWord() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment word = arena.allocate(16, 8).asSlice(1, 4);
            assertThrows(IllegalArgumentException.class, () -> Linux.futexWake(word, 1));
        }
    }
}
