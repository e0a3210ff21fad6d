package dev.airlock.bench.suite;

import dev.airlock.hypervisor.SharedRegionInfo;
import dev.airlock.transport.DeviceHost;
import dev.airlock.transport.NotificationMode;
import dev.airlock.transport.TransportKind;
import dev.airlock.transport.VirtioDeviceModel;

/**
 * The notification modes of the echo runs. In {@link NotificationMode#POLLING} the backend's device
 * host gives the device a poller thread that watches the avail ring (with the transport's default
 * {@link dev.airlock.transport.PollingPolicy}: it spins while there is work), and the suite's
 * driver turns used-buffer notifications off and spins on reap.
 */
final class Polling {
    /** Why the polling figures are missing when the transport has no polling mode. */
    static final String UNAVAILABLE = "the transport has no polling mode (dev.airlock.transport.NotificationMode)";

    private Polling() {
    }

    /**
     * Whether the transport this suite was built against has a polling mode.
     *
     * @return true: {@link NotificationMode#POLLING} exists
     */
    static boolean available() {
        return true;
    }

    /**
     * Adds the device in slot 0 in the mode asked for.
     *
     * @param host    the device host
     * @param kind    the transport
     * @param region  the pair's region
     * @param model   the device
     * @param polling polling rather than doorbell mode
     */
    static void addDevice(DeviceHost host, TransportKind kind, SharedRegionInfo region, VirtioDeviceModel model, boolean polling) {
        host.addDevice(kind, region, 0, model, polling ? NotificationMode.POLLING : NotificationMode.DOORBELL);
    }
}
