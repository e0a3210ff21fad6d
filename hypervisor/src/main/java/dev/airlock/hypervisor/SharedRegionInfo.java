package dev.airlock.hypervisor;

/**
 * A shared region as the control plane sees it: one block of memory granted to exactly one
 * primary/secondary pair, seen by each side at its own guest-physical base.
 *
 * @param id                its id
 * @param name              its name, also the name of the region in both address spaces
 * @param sizeBytes         its size, a multiple of 4096
 * @param primary           the primary it is granted to
 * @param secondary         the secondary it is granted to
 * @param primaryGpaBase    where the primary sees its first byte
 * @param secondaryGpaBase  where the secondary sees its first byte
 */
public record SharedRegionInfo(SharedRegionId id, String name, long sizeBytes, VmId primary, VmId secondary,
                               long primaryGpaBase, long secondaryGpaBase) {
}
