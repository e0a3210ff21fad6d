package dev.airlock.cli.machine;

import dev.airlock.devices.blk.BlkDevice;
import dev.airlock.devices.blk.BlkOptions;
import dev.airlock.devices.console.ConsoleDevice;
import dev.airlock.devices.console.ConsoleEndpoint;
import dev.airlock.devices.rng.RngDevice;
import dev.airlock.transport.VirtioDeviceModel;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.function.Function;

/**
 * A backend built from a {@link DeviceSpec}: the device model, a one-line summary of its counters,
 * and what to close when the backend stops.
 *
 * @param spec  what was asked for
 * @param model the device model a transport serves
 */
public record ServedDevice(DeviceSpec spec, VirtioDeviceModel model) implements AutoCloseable {
    /**
     * Builds the backend for {@code spec}.
     *
     * @param spec     the device
     * @param consoles makes the console's endpoint from the spec (stdio, socket, file, or what a
     *                 demo captures)
     * @return the backend, not yet served
     * @throws UncheckedIOException if the image cannot be opened or is locked by another backend
     */
    public static ServedDevice create(DeviceSpec spec, Function<DeviceSpec, ConsoleEndpoint> consoles) {
        VirtioDeviceModel model = switch (spec.type()) {
            case BLK -> {
                String image = spec.option("image", null);
                if (image == null || image.isEmpty()) {
                    throw new IllegalArgumentException("blk needs an image: blk:image=FILE");
                }
                BlkOptions.Builder options = BlkOptions.builder(Path.of(image)).readOnly(spec.flag("ro"));
                String serial = spec.option("serial", null);
                if (serial != null) {
                    options.serial(serial);
                }
                String queues = spec.option("queues", null);
                if (queues != null) {
                    options.numQueues(Integer.parseInt(queues));
                }
                try {
                    yield BlkDevice.open(options.build());
                } catch (IOException e) {
                    throw new UncheckedIOException("blk: cannot serve " + image + ": " + e.getMessage(), e);
                }
            }
            case CONSOLE -> new ConsoleDevice(consoles.apply(spec));
            case RNG -> new RngDevice();
        };
        return new ServedDevice(spec, model);
    }

    /**
     * The device's counters in one line.
     *
     * @return for example {@code reads 1024, writes 1024, flushes 1, bytes read 64 MiB, ...}
     */
    public String metrics() {
        return switch (model) {
            case BlkDevice blk -> blk.metrics().toString();
            case ConsoleDevice console -> console.metrics().toString();
            case RngDevice rng -> rng.metrics().toString();
            default -> "";
        };
    }

    @Override
    public void close() {
        try {
            switch (model) {
                case BlkDevice blk -> blk.close();
                case ConsoleDevice console -> console.close();
                case RngDevice rng -> rng.close();
                default -> { }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(spec + ": close failed: " + e.getMessage(), e);
        }
    }
}
