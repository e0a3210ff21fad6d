package dev.airlock.hypervisor;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.fail;

/** Helpers shared by the hypervisor tests. */
final class TestSupport {
    static final long RAM = 1 << 20;
    static final long PAGE = 4096;

    private TestSupport() {
    }

    /** The file descriptors open in this process. */
    static int openFdCount() {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return (int) fds.count();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The open fds whose target mentions {@code text}, e.g. a memfd name. */
    static List<String> openFdsNamed(String text) {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.map(fd -> {
                try {
                    return Files.readSymbolicLink(fd).toString();
                } catch (IOException e) {
                    return ""; // closed while listing
                }
            }).filter(target -> target.contains(text)).toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The lines of /proc/self/maps that mention {@code text}. */
    static List<String> mappingsNamed(String text) {
        try {
            return Files.readAllLines(Path.of("/proc/self/maps")).stream().filter(l -> l.contains(text)).toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The live threads of this runtime's VMs. */
    static List<Thread> vmThreads() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith("airlock-vm-") && t.isAlive()).toList();
    }

    static void await(String what, Duration timeout, BooleanSupplier condition) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                fail("timed out after " + timeout + " waiting for: " + what);
            }
            try {
                Thread.sleep(2);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                fail("interrupted waiting for: " + what);
            }
        }
    }

    /** An interrupt handler that records every interrupt. */
    static final class Recorder implements InterruptHandler {
        final BlockingQueue<Interrupt> interrupts = new LinkedBlockingQueue<>();

        @Override
        public void onInterrupt(Interrupt interrupt) {
            interrupts.add(interrupt);
        }

        Interrupt next() {
            try {
                Interrupt interrupt = interrupts.poll(5, TimeUnit.SECONDS);
                if (interrupt == null) {
                    fail("no interrupt within 5 s");
                }
                return interrupt;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }

        /** Asserts that no interrupt arrives within {@code millis}. */
        void expectNone(long millis) {
            try {
                Interrupt interrupt = interrupts.poll(millis, TimeUnit.MILLISECONDS);
                if (interrupt != null) {
                    fail("unexpected interrupt " + interrupt);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }
    }

    /** A primary, two secondaries; the first secondary connected to the primary by queues and doorbells. */
    static final class World implements AutoCloseable {
        final InProcessHypervisor hypervisor;
        final VmId hostId;
        final VmId guest1Id;
        final VmId guest2Id;
        final VmContext host;
        final VmContext guest1;
        final VmContext guest2;

        World() {
            this(HypervisorConfig.DEFAULT, 4);
        }

        World(HypervisorConfig config, int depth) {
            hypervisor = new InProcessHypervisor(config);
            hostId = hypervisor.createVm(VmSpec.primary("host", RAM));
            guest1Id = hypervisor.createVm(VmSpec.secondary("guest1", RAM));
            guest2Id = hypervisor.createVm(VmSpec.secondary("guest2", RAM));
            hypervisor.connectMessageQueues(hostId, guest1Id, depth);
            hypervisor.connectDoorbells(hostId, guest1Id);
            host = hypervisor.context(hostId);
            guest1 = hypervisor.context(guest1Id);
            guest2 = hypervisor.context(guest2Id);
        }

        World started() {
            hypervisor.startVm(hostId);
            hypervisor.startVm(guest1Id);
            hypervisor.startVm(guest2Id);
            return this;
        }

        @Override
        public void close() {
            hypervisor.close();
        }
    }
}
