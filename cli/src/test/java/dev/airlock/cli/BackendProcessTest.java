package dev.airlock.cli;

import dev.airlock.cli.machine.DeviceSpec;
import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.devices.blk.BlkOptions;
import dev.airlock.devices.blk.BlockDevice;
import dev.airlock.devices.blk.BlockDeviceOptions;
import dev.airlock.hypervisor.HypervisorConfig;
import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmSpec;
import dev.airlock.hypervisor.VmState;
import dev.airlock.hypervisor.process.HypervisorDaemon;
import dev.airlock.hypervisor.process.RemoteHypervisor;
import dev.airlock.hypervisor.process.RemoteVmContext;
import dev.airlock.transport.DriverHost;
import dev.airlock.transport.VirtioFrontend;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code airlock backend blk} as a real process on the multi-process runtime, with this JVM as the
 * secondary VM: data written and flushed through the bounce path is on the image after the backend
 * is killed with SIGKILL, and the image lock dies with the process.
 */
class BackendProcessTest {
    private static final long IMAGE_BYTES = 8L << 20;
    private static final long IO_AREA_BYTES = 1L << 20;
    private static final long DATA_GPA = 2L << 20;
    private static final int DATA_BYTES = 1 << 20;

    @ParameterizedTest
    @ValueSource(strings = {"msgq-mmio", "shmem-doorbell"})
    @Timeout(90)
    void shouldKeepFlushedWritesWhenTheBackendIsKilled(String transport, @TempDir Path dir) throws Exception {
        Path socket = dir.resolve("hv.sock");
        Path image = dir.resolve("disk.raw");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(IMAGE_BYTES);
        }
        Files.createFile(dir.resolve("backend.log"));
        try (HypervisorDaemon daemon = HypervisorDaemon.start(socket, HypervisorConfig.DEFAULT)) {
            Files.writeString(HypervisorCommand.credentialFile(socket), daemon.controlCredential().toHex() + "\n");
            DaemonAddress address = DaemonAddress.of(socket);
            VmId host;
            VmId guest;
            try (DaemonAddress.Control control = address.control()) {
                RemoteHypervisor hv = control.hypervisor();
                host = hv.createVm(VmSpec.primary("host", 1L << 20));
                guest = hv.createVm(VmSpec.secondary("guest1", 8L << 20));
                address.saveCredential("guest1", hv.credential(guest));
            }
            Process backend = SelfLauncher.start(dir.resolve("backend.log"), "backend", "blk", "--socket", socket.toString(),
                    "--vm", "guest1", "--image", image.toString(), "--transport", transport);
            try (RemoteVmContext vm = RemoteVmContext.attach(socket, address.loadCredential("guest1"));
                 DriverHost driverHost = new DriverHost(vm, Duration.ofSeconds(2))) {
                try (DaemonAddress.Control control = address.control()) {
                    control.hypervisor().startVm(host);
                    control.hypervisor().startVm(guest);
                }
                BufferedReader out = new BufferedReader(new InputStreamReader(backend.getInputStream(), StandardCharsets.UTF_8));
                String ready = out.readLine();
                assertTrue(ready != null && ready.startsWith("READY"), () -> ready + "\n" + log(dir));
                assertTrue(vm.awaitState(VmState.RUNNING, Duration.ofSeconds(10)));
                SharedRegionMapping region = awaitRegion(vm);
                DeviceSpec d = DeviceSpec.fromRegionName("guest1", region.name(), region.sizeBytes());
                byte[] data = new byte[DATA_BYTES];
                new SplittableRandom(7).nextBytes(data);
                try (VirtioFrontend frontend = new VirtioFrontend(driverHost.open(d.transport(), region.id(), d.slot()), vm.addressSpace());
                     BlockDevice blk = BlockDevice.open(frontend, vm.addressSpace(), BlockDeviceOptions.of(0, IO_AREA_BYTES))) {
                    assertEquals(IMAGE_BYTES / 512, blk.capacitySectors());
                    MemorySegment buffer = vm.addressSpace().translate(DATA_GPA, DATA_BYTES);
                    MemorySegment.copy(data, 0, buffer, ValueLayout.JAVA_BYTE, 0, DATA_BYTES);
                    blk.write(2048, DATA_GPA, DATA_BYTES); // at 1 MiB into the disk
                    blk.flush();
                    backend.destroyForcibly(); // SIGKILL right after the flush was acknowledged
                    assertTrue(backend.waitFor(10, TimeUnit.SECONDS));
                }
            }
            byte[] onDisk = new byte[DATA_BYTES];
            try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "r")) {
                f.seek(1L << 20);
                f.readFully(onDisk);
            }
            assertArrayEquals(data(), onDisk, "the flushed write is on the image");
            try (BlkDevice again = BlkDevice.open(BlkOptions.builder(image).build())) {
                assertEquals(IMAGE_BYTES / 512, again.capacitySectors(), "the dead backend's lock is gone");
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"msgq-mmio", "shmem-doorbell"})
    @Timeout(120)
    void shouldCompleteInFlightIoWhenTheBackendIsKilledAndRestarted(String transport, @TempDir Path dir) throws Exception {
        Path socket = dir.resolve("hv.sock");
        Path image = dir.resolve("disk.raw");
        try (RandomAccessFile f = new RandomAccessFile(image.toFile(), "rw")) {
            f.setLength(IMAGE_BYTES);
        }
        Files.createFile(dir.resolve("backend.log"));
        String[] backendArgs = {"backend", "blk", "--socket", socket.toString(), "--vm", "guest1", "--image", image.toString(),
            "--transport", transport};
        try (HypervisorDaemon daemon = HypervisorDaemon.start(socket, HypervisorConfig.DEFAULT)) {
            Files.writeString(HypervisorCommand.credentialFile(socket), daemon.controlCredential().toHex() + "\n");
            DaemonAddress address = DaemonAddress.of(socket);
            VmId host;
            VmId guest;
            try (DaemonAddress.Control control = address.control()) {
                RemoteHypervisor hv = control.hypervisor();
                host = hv.createVm(VmSpec.primary("host", 1L << 20));
                guest = hv.createVm(VmSpec.secondary("guest1", 16L << 20));
                address.saveCredential("guest1", hv.credential(guest));
                hv.startVm(host);
                hv.startVm(guest);
            }
            Process backend = SelfLauncher.start(dir.resolve("backend.log"), backendArgs);
            try (RemoteVmContext vm = RemoteVmContext.attach(socket, address.loadCredential("guest1"));
                 DriverHost driverHost = new DriverHost(vm, Duration.ofSeconds(2))) {
                awaitReady(backend, dir);
                SharedRegionMapping region = awaitRegion(vm);
                DeviceSpec d = DeviceSpec.fromRegionName("guest1", region.name(), region.sizeBytes());
                int chunk = 64 << 10;
                int chunks = 96; // 6 MiB, 16 in flight
                MemorySegment ram = vm.addressSpace().translate(DATA_GPA, (long) chunks * chunk);
                SplittableRandom random = new SplittableRandom(11);
                for (long off = 0; off < ram.byteSize(); off += 8) {
                    ram.set(ValueLayout.JAVA_LONG_UNALIGNED, off, random.nextLong());
                }
                byte[] expected = ram.toArray(ValueLayout.JAVA_BYTE);
                try (VirtioFrontend frontend = new VirtioFrontend(driverHost.open(d.transport(), region.id(), d.slot()), vm.addressSpace());
                     BlockDevice blk = BlockDevice.open(frontend, vm.addressSpace(),
                             BlockDeviceOptions.of(0, IO_AREA_BYTES).withQueueDepth(16))) {
                    java.util.List<java.util.concurrent.CompletableFuture<Void>> writes = new java.util.ArrayList<>();
                    for (int i = 0; i < chunks; i++) {
                        writes.add(blk.writeAsync((long) i * chunk / 512, DATA_GPA + (long) i * chunk, chunk));
                        if (i == chunks / 3) {
                            backend.destroyForcibly(); // SIGKILL with writes in flight and more queued
                            assertTrue(backend.waitFor(10, TimeUnit.SECONDS));
                            backend = SelfLauncher.start(dir.resolve("backend.log"), backendArgs);
                            awaitReady(backend, dir);
                        }
                    }
                    for (java.util.concurrent.CompletableFuture<Void> w : writes) {
                        w.get(60, TimeUnit.SECONDS); // every write completes: resubmitted to the new backend
                    }
                    blk.flush();
                    ram.fill((byte) 0);
                    blk.read(0, DATA_GPA, (long) chunks * chunk);
                    assertArrayEquals(expected, ram.toArray(ValueLayout.JAVA_BYTE), "read back through the restarted backend");
                    assertTrue(blk.recoveries() >= 1, "the driver re-initialised the device");
                }
            } finally {
                backend.destroyForcibly();
                backend.waitFor(10, TimeUnit.SECONDS);
            }
            byte[] onDisk = Files.readAllBytes(image);
            assertTrue(onDisk.length == IMAGE_BYTES);
        }
    }

    private static void awaitReady(Process backend, Path dir) throws java.io.IOException {
        BufferedReader out = new BufferedReader(new InputStreamReader(backend.getInputStream(), StandardCharsets.UTF_8));
        String ready = out.readLine();
        assertTrue(ready != null && ready.startsWith("READY"), () -> ready + "\n" + log(dir));
    }

    private static byte[] data() {
        byte[] data = new byte[DATA_BYTES];
        new SplittableRandom(7).nextBytes(data);
        return data;
    }

    private static SharedRegionMapping awaitRegion(RemoteVmContext vm) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (System.nanoTime() < deadline) {
            for (SharedRegionMapping m : vm.sharedRegions()) {
                if (m.name().startsWith("guest1.0.blk.")) {
                    return m;
                }
            }
            Thread.sleep(5);
        }
        throw new AssertionError("no blk region granted: " + vm.sharedRegions());
    }

    private static String log(Path dir) {
        try {
            return Files.readString(dir.resolve("backend.log"));
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }
}
