package dev.airlock.devices.console;

import dev.airlock.transport.DeviceContext;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtqueueDevice;

/**
 * The owner of the transmitq: copies each buffer the guest sends into the port's output ring and
 * returns it (used length 0: the device wrote nothing, §5.3.6). When the ring is full it publishes
 * what it has done and waits for space, interruptibly; the output pump drains the ring to the
 * endpoint. The copy decouples the rings from endpoint I/O, so a reset never waits for a slow
 * client; for a console's data rates that is the right trade.
 */
final class TransmitWorker extends QueueWorker {
    private final ByteRing output;

    TransmitWorker(DeviceContext context, VirtqueueDevice queue, ConsolePort port, ConsoleMetrics metrics) {
        super("tx", context, queue, ConsoleDevice.TRANSMITQ, metrics);
        this.output = port.output;
    }

    @Override
    void serve() throws InterruptedException {
        while (!stopped()) {
            clearWake();
            DescriptorChain chain;
            boolean used = false;
            while ((chain = queue.pop()) != null) {
                long length = ConsoleRequest.parseTransmit(chain, queue.name());
                long offset = 0;
                while (offset < length) {
                    long n = output.fillFrom(chain, offset);
                    if (n == 0) {
                        if (used) {
                            publish(); // let the guest reuse what is done while the endpoint catches up
                            used = false;
                        }
                        output.awaitSpace();
                        if (stopped()) {
                            throw new InterruptedException("stopped");
                        }
                    }
                    offset += n;
                }
                queue.addUsed(chain, 0);
                metrics.recordTransmit(length);
                used = true;
            }
            if (used) {
                publish();
            }
            idle();
        }
    }
}
