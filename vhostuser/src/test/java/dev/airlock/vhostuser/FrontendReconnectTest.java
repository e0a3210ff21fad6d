package dev.airlock.vhostuser;

import dev.airlock.devices.blk.BlkDeviceFailedException;
import dev.airlock.transport.DeviceContext;
import dev.airlock.transport.VirtioDeviceModel;
import dev.airlock.virtio.VirtqueueDevice;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Airlock's blk driver over {@link VhostUserDriverTransport} with verified random concurrent I/O:
 * over a 1 GiB image through qemu-storage-daemon, and across backends killed with SIGKILL and
 * started again by hand (qemu-storage-daemon, and Airlock's own backend process) while requests are
 * in flight: the transport reconnects, the driver resubmits, and no acknowledged write is lost.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class FrontendReconnectTest {
    private static final int DEPTH = 32;

    @TempDir
    Path dir;

    /** A backend process that can be killed and started again on the same socket and image. */
    private interface Backend {
        AutoCloseable start() throws Exception;

        void kill() throws Exception;
    }

    private Backend qsd(Path image, Path socket) {
        return new Backend() {
            Qsd current;

            @Override
            public AutoCloseable start() throws Exception {
                current = Qsd.start(image, socket, true, dir.resolve("qsd.log"));
                return current;
            }

            @Override
            public void kill() throws InterruptedException {
                current.kill();
            }
        };
    }

    private Backend airlock(Path image, Path socket) {
        return new Backend() {
            Process current;

            @Override
            public AutoCloseable start() throws IOException {
                String java = ProcessHandle.current().info().command().orElse("java");
                Process p = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-Xmx256m", "-cp",
                        System.getProperty("java.class.path"), BlkBackendMain.class.getName(), socket.toString(), image.toString())
                        .redirectErrorStream(true).start();
                BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
                String line;
                while ((line = out.readLine()) != null && !line.equals("LISTENING")) {
                    System.out.println("[backend] " + line);
                }
                assertEquals("LISTENING", line, "the backend process did not start");
                Thread.ofPlatform().daemon().start(() -> out.lines().forEach(l -> System.out.println("[backend " + p.pid() + "] " + l)));
                current = p;
                return () -> {
                    p.destroyForcibly().waitFor();
                };
            }

            @Override
            public void kill() throws InterruptedException {
                current.destroyForcibly().waitFor();
            }
        };
    }

    @Test
    void shouldVerifyRandomConcurrentIoOverOneGibibyteOnTwoQueuesThroughQemuStorageDaemon() throws Exception {
        Path image = Qsd.image(dir.resolve("disk.raw"), 1L << 30);
        Path socket = dir.resolve("qsd.sock");
        try (Qsd qsd = Qsd.start(image, socket, true, dir.resolve("qsd.log"));
             FrontendVm vm = new FrontendVm(socket, Duration.ofSeconds(30), DEPTH)) {
            assertEquals((1L << 30) / 512, vm.blk.capacitySectors());
            BlkVerifier verifier = new BlkVerifier(vm.blk, vm.ram.segment().asSlice(FrontendVm.BUFFERS_GPA), FrontendVm.BUFFERS_GPA,
                    DEPTH, 1);
            verifier.run(6000, 0.6);
            vm.blk.flush();
            verifier.verifyAllThroughDevice(); // every block of the 1 GiB, written or still zero
            verifier.verifyImage(image);
            assertTrue(verifier.writes() > 3000 && verifier.reads() > 2000 + (1 << 30) / (BlkVerifier.MAX_BLOCKS * 4096),
                    verifier.writes() + " writes, " + verifier.reads() + " reads");
            assertFalse(vm.transport.isBroken());
            assertEquals(0, vm.blk.recoveries());
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"qemu-storage-daemon", "airlock"})
    void shouldLoseNothingWhenTheBackendIsKilledAndStartedAgainDuringIo(String which) throws Exception {
        Path image = Qsd.image(dir.resolve("disk.raw"), 256L << 20);
        Path socket = dir.resolve("vu.sock");
        Backend backend = which.equals("airlock") ? airlock(image, socket) : qsd(image, socket);
        AutoCloseable running = backend.start();
        try (FrontendVm vm = new FrontendVm(socket, Duration.ofSeconds(30), DEPTH)) {
            BlkVerifier verifier = new BlkVerifier(vm.blk, vm.ram.segment().asSlice(FrontendVm.BUFFERS_GPA), FrontendVm.BUFFERS_GPA,
                    DEPTH, 2);
            CompletableFuture<Void> io = CompletableFuture.runAsync(() -> {
                try {
                    verifier.run(Integer.MAX_VALUE, 0.7);
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            for (int round = 0; round < 2; round++) {
                long before = vm.blk.completedRequests();
                awaitProgress(vm, before + 500, io);
                backend.kill(); // SIGKILL with up to 32 requests in flight
                Thread.sleep(300);
                assertTrue(vm.transport.isDetached(), "not detached after the kill: " + vm.transport);
                running = backend.start();
            }
            awaitProgress(vm, vm.blk.completedRequests() + 500, io);
            verifier.requestStop();
            io.get(60, TimeUnit.SECONDS); // every request succeeded and read what was last written
            assertTrue(vm.blk.recoveries() >= 2, "recoveries: " + vm.blk.recoveries());
            vm.blk.flush();
            verifier.verifyAllThroughDevice();
            verifier.verifyImage(image);
            assertFalse(vm.transport.isBroken(), vm.transport.toString());
        } finally {
            running.close();
        }
    }

    /**
     * Ten quick restarts of an in-process backend (closed, then served again after 0 to 50 ms) with
     * verified I/O running: races between the hang-up, the reconnect and the driver's re-initialisation.
     */
    @Test
    void shouldLoseNothingAcrossTenQuickRestarts() throws Exception {
        Path image = Qsd.image(dir.resolve("disk.raw"), 64L << 20);
        Path socket = dir.resolve("quick.sock");
        java.util.Random random = new java.util.Random(3);
        VhostUserBackend backend = VhostUserBackend.serve(socket, () -> BlkBackendMain.openBlk(image));
        try (FrontendVm vm = new FrontendVm(socket, Duration.ofSeconds(30), DEPTH)) {
            BlkVerifier verifier = new BlkVerifier(vm.blk, vm.ram.segment().asSlice(FrontendVm.BUFFERS_GPA), FrontendVm.BUFFERS_GPA,
                    DEPTH, 4);
            CompletableFuture<Void> io = CompletableFuture.runAsync(() -> {
                try {
                    verifier.run(Integer.MAX_VALUE, 0.7);
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            for (int round = 0; round < 10; round++) {
                awaitProgress(vm, vm.blk.completedRequests() + 200, io);
                backend.close();
                Thread.sleep(random.nextInt(50));
                backend = VhostUserBackend.serve(socket, () -> BlkBackendMain.openBlk(image));
            }
            awaitProgress(vm, vm.blk.completedRequests() + 200, io);
            verifier.requestStop();
            io.get(60, TimeUnit.SECONDS);
            assertTrue(vm.blk.recoveries() >= 10, "recoveries: " + vm.blk.recoveries());
            vm.blk.flush();
            verifier.verifyAllThroughDevice();
            verifier.verifyImage(image);
        } finally {
            backend.close();
        }
    }

    /** Waits until the device completed {@code target} requests; fails early if the I/O thread failed. */
    private static void awaitProgress(FrontendVm vm, long target, CompletableFuture<Void> io) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (vm.blk.completedRequests() < target) {
            if (io.isDone()) {
                io.get();
                throw new AssertionError("the I/O ended early");
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("no progress: " + vm.blk.completedRequests() + " of " + target + ", " + vm.transport);
            }
            Thread.sleep(5);
        }
    }

    @Test
    void shouldFailPendingRequestsWhenTheBackendDoesNotComeBack() throws Exception {
        Path image = Qsd.image(dir.resolve("disk.raw"), 64L << 20);
        Path socket = dir.resolve("gone.sock");
        Qsd qsd = Qsd.start(image, socket, true, dir.resolve("qsd.log"));
        try (FrontendVm vm = new FrontendVm(socket, Duration.ofMillis(800), DEPTH)) {
            vm.blk.write(0, FrontendVm.BUFFERS_GPA, 4096);
            qsd.kill();
            long start = System.nanoTime();
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> vm.blk.writeAsync(8, FrontendVm.BUFFERS_GPA, 4096).get(10, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof BlkDeviceFailedException, String.valueOf(e.getCause()));
            assertTrue(e.getCause().getMessage().contains("did not come back within 800 ms"), e.getCause().getMessage());
            assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(5), "took too long");
            assertTrue(vm.transport.isBroken());
            assertFalse(vm.transport.isDetached());
        } finally {
            qsd.close();
        }
    }

    /** A blk model that takes requests and never completes one: a backend that only ever goes away. */
    private static final class BlackHole implements VirtioDeviceModel, AutoCloseable {
        private final dev.airlock.devices.blk.BlkDevice blk;

        BlackHole(dev.airlock.devices.blk.BlkDevice blk) {
            this.blk = blk;
        }

        @Override
        public int deviceId() {
            return blk.deviceId();
        }

        @Override
        public long deviceFeatures() {
            return blk.deviceFeatures();
        }

        @Override
        public int queueCount() {
            return blk.queueCount();
        }

        @Override
        public int maxQueueSize(int queue) {
            return blk.maxQueueSize(queue);
        }

        @Override
        public int configSizeBytes() {
            return blk.configSizeBytes();
        }

        @Override
        public long readConfig(int offset, int sizeBytes) {
            return blk.readConfig(offset, sizeBytes);
        }

        @Override
        public boolean writeConfig(int offset, int sizeBytes, long value) {
            return blk.writeConfig(offset, sizeBytes, value);
        }

        @Override
        public void activate(DeviceContext context, long negotiatedFeatures, List<VirtqueueDevice> queues) {
        }

        @Override
        public void queueNotified(int queue) {
        }

        @Override
        public void reset() {
        }

        @Override
        public void close() throws Exception {
            blk.close();
        }
    }

    @Test
    void rejectsABackendThatKeepsGoingAwayWithoutCompletingAnything() throws Exception {
        Path image = Qsd.image(dir.resolve("disk.raw"), 16L << 20);
        Path socket = dir.resolve("flaky.sock");
        VhostUserBackend backend = VhostUserBackend.serve(socket, () -> new BlackHole(BlkBackendMain.openBlk(image)));
        try (FrontendVm vm = new FrontendVm(socket, Duration.ofSeconds(10), DEPTH)) {
            CompletableFuture<Void> read = vm.blk.readAsync(0, FrontendVm.BUFFERS_GPA, 4096);
            int restarts = 0;
            while (!read.isDone() && restarts < 10) {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while ((vm.transport.isDetached() || (vm.transport.status() & dev.airlock.virtio.DeviceStatus.DRIVER_OK) == 0)
                        && !read.isDone() && System.nanoTime() < deadline) {
                    Thread.sleep(5); // until the driver has set the device up again and resubmitted
                }
                Thread.sleep(50);
                if (read.isDone()) {
                    break;
                }
                backend.close();
                backend = VhostUserBackend.serve(socket, () -> new BlackHole(BlkBackendMain.openBlk(image)));
                restarts++;
            }
            ExecutionException e = assertThrows(ExecutionException.class, () -> read.get(10, TimeUnit.SECONDS));
            assertTrue(e.getCause().getMessage().contains("went away 4 times in a row without completing a request"),
                    e.getCause().getMessage());
            assertEquals(4, restarts, "the driver gave up after maxRecoveries (3) reattaches");
        } finally {
            backend.close();
        }
    }

    @Test
    void rejectsABackendThatComesBackWithOtherFeatures() throws Exception {
        Path image = Qsd.image(dir.resolve("disk.raw"), 64L << 20);
        Path socket = dir.resolve("changed.sock");
        Qsd qsd = Qsd.start(image, socket, true, dir.resolve("qsd.log"));
        try (FrontendVm vm = new FrontendVm(socket, Duration.ofSeconds(10), DEPTH)) {
            vm.blk.write(0, FrontendVm.BUFFERS_GPA, 4096);
            qsd.kill();
            qsd = Qsd.start(image, socket, false, dir.resolve("qsd.log")); // read-only now: VIRTIO_BLK_F_RO
            ExecutionException e = assertThrows(ExecutionException.class,
                    () -> vm.blk.writeAsync(8, FrontendVm.BUFFERS_GPA, 4096).get(10, TimeUnit.SECONDS));
            assertTrue(e.getCause() instanceof BlkDeviceFailedException, String.valueOf(e.getCause()));
            assertTrue(vm.transport.isBroken());
            assertTrue(vm.transport.brokenReason().contains("came back with features"), vm.transport.brokenReason());
        } finally {
            qsd.close();
        }
    }
}
