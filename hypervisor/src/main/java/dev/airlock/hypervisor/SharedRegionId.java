package dev.airlock.hypervisor;

/**
 * The identity of a shared region, assigned by the hypervisor; never reused within one hypervisor.
 *
 * @param value the id, positive
 */
public record SharedRegionId(long value) {
    /**
     * Checks the id.
     *
     * @throws IllegalArgumentException if {@code value} is not positive
     */
    public SharedRegionId {
        if (value <= 0) {
            throw new IllegalArgumentException("a shared region id is positive: " + value);
        }
    }

    @Override
    public String toString() {
        return "region#" + value;
    }
}
