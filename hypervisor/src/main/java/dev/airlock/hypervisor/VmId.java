package dev.airlock.hypervisor;

/**
 * The identity of a VM, assigned by the hypervisor at creation. Ids are never reused within one
 * hypervisor, so a stale id held by a peer cannot alias a VM created later.
 *
 * @param value the id, positive
 */
public record VmId(int value) {
    /**
     * Checks the id.
     *
     * @throws IllegalArgumentException if {@code value} is not positive
     */
    public VmId {
        if (value <= 0) {
            throw new IllegalArgumentException("a vm id is positive: " + value);
        }
    }

    @Override
    public String toString() {
        return "vm#" + value;
    }
}
