/**
 * virtio-console (VIRTIO 1.2 §5.3), one port, no multiport: the backend {@link
 * dev.airlock.devices.console.ConsoleDevice} with its {@link dev.airlock.devices.console.ConsoleEndpoint}s
 * (stdio, a Unix socket, a file), the frontend driver {@link dev.airlock.devices.console.Console}
 * (an input and an output stream for the guest), the request parser
 * {@link dev.airlock.devices.console.ConsoleRequest}, the configuration layout
 * {@link dev.airlock.devices.console.ConsoleConfigLayout} and {@link dev.airlock.devices.console.ConsoleMetrics}.
 */
package dev.airlock.devices.console;
