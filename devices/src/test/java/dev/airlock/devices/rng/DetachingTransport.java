package dev.airlock.devices.rng;

import dev.airlock.hypervisor.SharedRegionMapping;
import dev.airlock.transport.DriverTransport;
import dev.airlock.transport.TransportException;
import dev.airlock.transport.TransportKind;

/**
 * A driver transport whose device's backend can be made to go away and come back, as on the
 * multi-process runtime, over a real in-process transport: {@link #detach} resets the device (so
 * nothing it held completes and it forgets the rings, as a new backend process would), makes every
 * call fail fast and reports {@code onBroken}; {@link #reattach} lets calls through again, to a
 * device in reset state, optionally offering fewer features, and reports {@code onReattached};
 * {@link #breakForGood} breaks it. For the console and rng driver tests.
 */
public final class DetachingTransport implements DriverTransport {
    private final DriverTransport inner;
    private volatile Listener listener;
    private volatile boolean detached;
    private volatile boolean broken;
    private volatile long featureMask = -1L;

    /**
     * Wraps a transport; its listener is taken over.
     *
     * @param inner the real transport (closed by its owner, not here)
     */
    public DetachingTransport(DriverTransport inner) {
        this.inner = inner;
        inner.setListener(new Listener() {
            @Override
            public void onUsedBuffers() {
                Listener l = listener;
                if (l != null && !detached && !broken) {
                    l.onUsedBuffers();
                }
            }

            @Override
            public void onConfigChange() {
                Listener l = listener;
                if (l != null && !detached && !broken) {
                    l.onConfigChange();
                }
            }

            @Override
            public void onBroken() {
                Listener l = listener;
                if (l != null) {
                    l.onBroken();
                }
            }
        });
    }

    /** The backend goes away: the device is reset, calls fail fast, the listener hears {@code onBroken}. */
    public void detach() {
        detached = true;
        inner.writeStatus(0);
        Listener l = listener;
        if (l != null) {
            l.onBroken();
        }
    }

    /**
     * A new backend attaches: the device is in reset state; the listener hears {@code onReattached}.
     *
     * @param offeredMask the features the new device offers, as a mask over the real device's; -1 for all
     */
    public void reattach(long offeredMask) {
        featureMask = offeredMask;
        detached = false;
        Listener l = listener;
        if (l != null) {
            l.onReattached();
        }
    }

    /** The transport breaks for good; the listener hears {@code onBroken}. */
    public void breakForGood() {
        broken = true;
        detached = false;
        Listener l = listener;
        if (l != null) {
            l.onBroken();
        }
    }

    private void check() {
        if (broken) {
            throw new TransportException(inner.name() + ": broken for good");
        }
        if (detached) {
            throw new TransportException(inner.name() + ": the device's backend is gone");
        }
    }

    @Override
    public TransportKind kind() {
        return inner.kind();
    }

    @Override
    public String name() {
        return inner.name();
    }

    @Override
    public int probe() {
        check();
        return inner.probe();
    }

    @Override
    public long deviceFeatures() {
        check();
        return inner.deviceFeatures() & featureMask;
    }

    @Override
    public void writeDriverFeatures(long features) {
        check();
        inner.writeDriverFeatures(features);
    }

    @Override
    public int status() {
        check();
        return inner.status();
    }

    @Override
    public void writeStatus(int status) {
        check();
        inner.writeStatus(status);
    }

    @Override
    public int queueNumMax(int queue) {
        check();
        return inner.queueNumMax(queue);
    }

    @Override
    public boolean enableQueue(int queue, int size, long descAddr, long availAddr, long usedAddr) {
        check();
        return inner.enableQueue(queue, size, descAddr, availAddr, usedAddr);
    }

    @Override
    public int configGeneration() {
        check();
        return inner.configGeneration();
    }

    @Override
    public long readConfig(int offset, int sizeBytes) {
        check();
        return inner.readConfig(offset, sizeBytes);
    }

    @Override
    public void writeConfig(int offset, int sizeBytes, long value) {
        check();
        inner.writeConfig(offset, sizeBytes, value);
    }

    @Override
    public void notifyQueue(int queue) {
        if (!detached && !broken) {
            inner.notifyQueue(queue);
        }
    }

    @Override
    public void setListener(Listener listener) {
        this.listener = listener;
    }

    @Override
    public SharedRegionMapping region() {
        return inner.region();
    }

    @Override
    public long dmaOffset() {
        return inner.dmaOffset();
    }

    @Override
    public boolean isBroken() {
        return broken || inner.isBroken();
    }

    @Override
    public boolean isDetached() {
        return detached && !isBroken();
    }

    /** Nothing: the inner transport belongs to whoever opened it. */
    @Override
    public void close() {
    }

    @Override
    public String toString() {
        return "DetachingTransport(" + inner + (broken ? ", broken" : detached ? ", detached" : "") + ")";
    }
}
