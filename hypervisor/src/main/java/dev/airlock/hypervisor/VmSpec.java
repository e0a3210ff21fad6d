package dev.airlock.hypervisor;

import java.util.Objects;
import java.util.regex.Pattern;

/**
 * What to create: a VM's name, role and private RAM.
 *
 * @param name         a unique name among live VMs: letters, digits, {@code . _ -}, at most 64 characters
 * @param role         primary or secondary
 * @param ramSizeBytes the size of its private RAM, a positive multiple of 4096
 * @param ramGpaBase   the guest-physical address of the first byte of RAM, a multiple of 4096
 */
public record VmSpec(String name, VmRole role, long ramSizeBytes, long ramGpaBase) {
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9._-]{1,64}");

    /**
     * Checks the spec.
     *
     * @throws IllegalArgumentException if the name, size or base is malformed
     */
    public VmSpec {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(role, "role");
        if (!NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("a vm name is 1 to 64 of [A-Za-z0-9._-]: '" + name + "'");
        }
        if (ramSizeBytes <= 0 || (ramSizeBytes & 4095) != 0) {
            throw new IllegalArgumentException("vm '" + name + "': ram size must be a positive multiple of 4096: " + ramSizeBytes);
        }
        if ((ramGpaBase & 4095) != 0 || Long.compareUnsigned(ramGpaBase, -ramSizeBytes) > 0) {
            throw new IllegalArgumentException("vm '" + name + "': ram base 0x" + Long.toHexString(ramGpaBase)
                    + " is not page aligned or the ram wraps around 2^64");
        }
    }

    /**
     * A primary VM with RAM at guest-physical address 0.
     *
     * @param name         its name
     * @param ramSizeBytes its RAM size
     * @return the spec
     */
    public static VmSpec primary(String name, long ramSizeBytes) {
        return new VmSpec(name, VmRole.PRIMARY, ramSizeBytes, 0);
    }

    /**
     * A secondary VM with RAM at guest-physical address 0.
     *
     * @param name         its name
     * @param ramSizeBytes its RAM size
     * @return the spec
     */
    public static VmSpec secondary(String name, long ramSizeBytes) {
        return new VmSpec(name, VmRole.SECONDARY, ramSizeBytes, 0);
    }

    /**
     * The same spec with RAM at another base.
     *
     * @param gpaBase the guest-physical address of the first byte of RAM
     * @return a new spec
     */
    public VmSpec withRamGpaBase(long gpaBase) {
        return new VmSpec(name, role, ramSizeBytes, gpaBase);
    }
}
