package dev.airlock.hypervisor;

/**
 * A snapshot of a VM, as the control plane lists it.
 *
 * @param id           its id
 * @param name         its name
 * @param role         primary or secondary
 * @param state        its state when the snapshot was taken
 * @param ramSizeBytes the size of its private RAM
 */
public record VmInfo(VmId id, String name, VmRole role, VmState state, long ramSizeBytes) {
}
