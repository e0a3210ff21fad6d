package dev.airlock.hypervisor.process;

import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.Objects;

/**
 * A secret the daemon issues: one per VM when it is created (the VM process attaches with it), and
 * one for the control plane. 128 random bits; compared in constant time; never printed by
 * {@link #toString()}. {@link #toHex()} is for handing it to a child process.
 */
public final class Credential {
    private static final SecureRandom RANDOM = new SecureRandom();
    private final byte[] bytes;

    private Credential(byte[] bytes) {
        this.bytes = bytes;
    }

    /**
     * A fresh random credential.
     *
     * @return the credential
     */
    public static Credential random() {
        byte[] bytes = new byte[WireLayout.CREDENTIAL_LENGTH];
        RANDOM.nextBytes(bytes);
        return new Credential(bytes);
    }

    /**
     * A credential from its bytes.
     *
     * @param bytes exactly {@value WireLayout#CREDENTIAL_LENGTH} bytes
     * @return the credential
     * @throws IllegalArgumentException if the length is wrong
     */
    public static Credential of(byte[] bytes) {
        Objects.requireNonNull(bytes, "bytes");
        if (bytes.length != WireLayout.CREDENTIAL_LENGTH) {
            throw new IllegalArgumentException("a credential is " + WireLayout.CREDENTIAL_LENGTH + " bytes: " + bytes.length);
        }
        return new Credential(bytes.clone());
    }

    /**
     * A credential from {@link #toHex()}.
     *
     * @param hex 32 hex digits
     * @return the credential
     * @throws IllegalArgumentException if malformed
     */
    public static Credential fromHex(String hex) {
        return of(HexFormat.of().parseHex(hex));
    }

    /**
     * The credential as 32 hex digits.
     *
     * @return the hex form; a secret
     */
    public String toHex() {
        return HexFormat.of().formatHex(bytes);
    }

    /**
     * The bytes.
     *
     * @return a copy
     */
    public byte[] bytes() {
        return bytes.clone();
    }

    /**
     * Compares in constant time.
     *
     * @param other raw bytes received from a peer
     * @return whether they are this credential
     */
    boolean matches(byte[] other) {
        return MessageDigest.isEqual(bytes, other);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Credential c && MessageDigest.isEqual(bytes, c.bytes);
    }

    @Override
    public int hashCode() {
        return java.util.Arrays.hashCode(bytes);
    }

    @Override
    public String toString() {
        return "Credential[redacted]";
    }
}
