package dev.airlock.devices.rng;

import java.security.SecureRandom;
import java.util.Objects;
import java.util.Random;

/**
 * Where an {@link RngDevice} gets its bytes. {@code SecureRandom::nextBytes} fits, and so does
 * {@code Random::nextBytes} of any {@link java.util.Random} (for tests with a seed). Called on the
 * device's worker thread, never on the transport's interrupt thread, so it may block (a
 * {@code SecureRandom} waiting for the kernel's pool, say).
 */
@FunctionalInterface
public interface EntropySupplier {
    /**
     * Fills {@code bytes} entirely.
     *
     * @param bytes receives {@code bytes.length} random bytes
     */
    void nextBytes(byte[] bytes);

    /**
     * A supplier over a new {@link SecureRandom} (the platform's default algorithm).
     *
     * @return the supplier
     */
    static EntropySupplier secure() {
        SecureRandom random = new SecureRandom();
        return random::nextBytes;
    }

    /**
     * A supplier over any {@link Random}: a {@link SecureRandom}, or a seeded generator for tests.
     *
     * @param random the generator
     * @return the supplier
     */
    static EntropySupplier of(Random random) {
        Objects.requireNonNull(random, "random");
        return random::nextBytes;
    }
}
