package dev.airlock.virtio;

import java.io.Serial;
import java.io.Serializable;
import java.util.Objects;

/**
 * A protocol violation by the other side, recorded in a form a log line and a test can both use:
 * which queue or device, which field (named as in the spec), the value found, and the rule broken.
 *
 * @param source the queue or device, for example {@code "blk0.requestq"}
 * @param field  the spec field, for example {@code "desc[3].next"}, {@code "avail.idx"} or
 *               {@code "used.ring[7].id"}
 * @param value  the offending value as read (unsigned fields widened without sign)
 * @param reason the rule it breaks
 */
public record VirtioFault(String source, String field, long value, String reason) implements Serializable {
    @Serial
    private static final long serialVersionUID = 1L;

    /**
     * Checks the components.
     *
     * @throws NullPointerException if a text component is null
     */
    public VirtioFault {
        Objects.requireNonNull(source, "source");
        Objects.requireNonNull(field, "field");
        Objects.requireNonNull(reason, "reason");
    }

    /**
     * A one-line description: {@code "blk0.requestq: desc[3].next = 300 (0x12c): >= queue size 256"}.
     *
     * @return the message
     */
    public String message() {
        return source + ": " + field + " = " + value + " (0x" + Long.toHexString(value) + "): " + reason;
    }
}
