package dev.airlock.devices.console;

import dev.airlock.transport.DeviceContext;
import dev.airlock.virtio.DescriptorChain;
import dev.airlock.virtio.VirtqueueDevice;

import java.util.ArrayDeque;

/**
 * The owner of the receiveq: takes every buffer the guest posts as soon as it is posted (so a
 * hostile one is refused at once), keeps them in order, and fills the oldest with whatever input
 * the port holds. Input waits in the port's ring until a buffer exists; nothing is dropped.
 */
final class ReceiveWorker extends QueueWorker {
    private final ByteRing input;
    private final ArrayDeque<DescriptorChain> posted = new ArrayDeque<>();

    ReceiveWorker(DeviceContext context, VirtqueueDevice queue, ConsolePort port, ConsoleMetrics metrics) {
        super("rx", context, queue, ConsoleDevice.RECEIVEQ, metrics);
        this.input = port.input;
    }

    @Override
    void serve() throws InterruptedException {
        input.setOnData(this::wake);
        try {
            while (!stopped()) {
                clearWake();
                DescriptorChain chain;
                while ((chain = queue.pop()) != null) {
                    ConsoleRequest.parseReceive(chain, queue.name());
                    posted.add(chain);
                }
                boolean used = false;
                while (!posted.isEmpty() && !input.isEmpty()) {
                    DescriptorChain next = posted.poll();
                    long written = input.drainInto(next);
                    queue.addUsed(next, written);
                    metrics.recordReceive(written);
                    used = true;
                }
                if (used) {
                    publish();
                    continue; // look again before sleeping: more input or buffers may be there
                }
                idle();
            }
        } finally {
            input.setOnData(null);
        }
    }
}
