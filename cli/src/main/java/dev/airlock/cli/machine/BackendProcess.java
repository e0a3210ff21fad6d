package dev.airlock.cli.machine;

import dev.airlock.devices.console.ConsoleEndpoint;
import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.hypervisor.VmId;
import dev.airlock.hypervisor.VmState;
import dev.airlock.hypervisor.process.Credential;
import dev.airlock.hypervisor.process.RemoteHypervisor;
import dev.airlock.hypervisor.process.RemoteVmContext;
import dev.airlock.transport.DeviceHost;
import dev.airlock.virtio.DeviceStatus;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * A backend process on the multi-process runtime: it serves every device of one secondary from the
 * primary's side. The hypervisor grants per primary/secondary pair (one message queue and one
 * doorbell each way, which the devices share by slot), so one backend process serves all of a
 * pair's devices.
 */
public final class BackendProcess implements AutoCloseable {
    private final String secondaryName;
    private final RemoteVmContext vm;
    private final DeviceHost host;
    private final List<ServedDevice> served = new ArrayList<>();
    private final List<SharedRegionInfo> regions = new ArrayList<>();

    private BackendProcess(String secondaryName, RemoteVmContext vm) {
        this.secondaryName = secondaryName;
        this.vm = vm;
        this.host = new DeviceHost(vm);
    }

    /**
     * Sets up the pair through the control plane (backend credential, one shared region per device,
     * message queues, doorbells), attaches as the primary's backend and serves the devices once the
     * primary runs.
     *
     * @param socket        the daemon's socket
     * @param control       a control connection (only used here; the caller disconnects it)
     * @param primary       the primary VM
     * @param secondary     the secondary VM
     * @param secondaryName its name
     * @param specs         the devices
     * @param consoles      makes console endpoints
     * @param startTimeout  how long to wait for the primary to run
     * @return the serving backend
     */
    public static BackendProcess start(Path socket, RemoteHypervisor control, VmId primary, VmId secondary, String secondaryName,
                                       List<DeviceSpec> specs, Function<DeviceSpec, ConsoleEndpoint> consoles, Duration startTimeout) {
        List<ServedDevice> devices = new ArrayList<>();
        try {
            for (DeviceSpec spec : specs) {
                devices.add(ServedDevice.create(spec, consoles)); // opens images (and takes their locks) before any grant
            }
            Credential credential = control.assignBackend(primary, secondary);
            // A pair whose backend died keeps its regions, queues and doorbells: a restarted backend
            // takes them over (the secondary's drivers re-initialise their devices when it attaches).
            List<SharedRegionInfo> existing = control.listSharedRegions().stream()
                    .filter(r -> r.primary().equals(primary) && r.secondary().equals(secondary)).toList();
            List<SharedRegionInfo> regions = new ArrayList<>();
            for (DeviceSpec spec : specs) {
                String name = spec.regionName(secondaryName);
                SharedRegionInfo kept = existing.stream().filter(r -> r.name().equals(name)).findFirst().orElse(null);
                if (kept != null && kept.sizeBytes() != spec.regionBytes()) {
                    throw new IllegalArgumentException(spec + ": the pair's region " + name + " is " + kept.sizeBytes()
                            + " bytes, not " + spec.regionBytes());
                }
                regions.add(kept != null ? kept : control.createSharedRegion(primary, secondary, name, spec.regionBytes(),
                        EmbeddedMachine.primaryBase(spec.slot()), EmbeddedMachine.secondaryBase(spec.slot())));
            }
            if (existing.isEmpty()) {
                control.connectMessageQueues(primary, secondary, 256);
                control.connectDoorbells(primary, secondary);
            }
            RemoteVmContext vm = RemoteVmContext.attach(socket, credential);
            BackendProcess backend = new BackendProcess(secondaryName, vm);
            backend.served.addAll(devices);
            backend.regions.addAll(regions);
            devices.clear();
            try {
                backend.serve(startTimeout);
            } catch (RuntimeException e) {
                backend.close();
                throw e;
            }
            return backend;
        } finally {
            devices.forEach(ServedDevice::close);
        }
    }

    private void serve(Duration startTimeout) {
        if (!vm.awaitState(VmState.RUNNING, startTimeout)) {
            throw new IllegalStateException("the primary did not start within " + startTimeout.toSeconds() + " s (airlock vm start)");
        }
        long deadline = System.nanoTime() + startTimeout.toNanos();
        for (int i = 0; i < served.size(); i++) {
            SharedRegionInfo region = regions.get(i);
            while (vm.sharedRegions().stream().noneMatch(m -> m.id().equals(region.id()))) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("region " + region.name() + " was not handed over");
                }
                Thread.onSpinWait();
                try {
                    Thread.sleep(1);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted");
                }
            }
            ServedDevice device = served.get(i);
            host.addDevice(device.spec().transport(), region, device.spec().slot(), device.model());
        }
    }

    /**
     * The status report {@code airlock status} shows: one line per device.
     *
     * @return the lines
     */
    public List<String> statusLines() {
        List<String> lines = new ArrayList<>();
        lines.add("backend pid " + ProcessHandle.current().pid() + " serving " + secondaryName + " (" + vm.state() + ")");
        for (int i = 0; i < served.size(); i++) {
            ServedDevice d = served.get(i);
            SharedRegionInfo region = regions.get(i);
            int status = host.deviceStatus(region.secondary(), d.spec().slot());
            lines.add(String.format("%-28s region %-28s status %s; %s", d.spec(), region.name(), DeviceStatus.describe(status),
                    d.metrics()));
        }
        lines.add("protocol errors " + host.protocolErrors() + ", internal errors " + host.internalErrors());
        return lines;
    }

    /**
     * The served devices.
     *
     * @return the devices
     */
    public List<ServedDevice> served() {
        return served;
    }

    @Override
    public void close() {
        host.close();
        served.forEach(ServedDevice::close);
        vm.close();
    }
}
