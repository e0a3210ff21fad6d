/**
 * virtio-rng (VIRTIO 1.2 §5.4): the backend {@link dev.airlock.devices.rng.RngDevice} over an
 * {@link dev.airlock.devices.rng.EntropySupplier}, the frontend driver
 * {@link dev.airlock.devices.rng.EntropySource} (blocking reads for the guest), the request parser
 * {@link dev.airlock.devices.rng.RngRequest} and {@link dev.airlock.devices.rng.RngMetrics}. The
 * device has no configuration space, so there is no layout class.
 */
package dev.airlock.devices.rng;
