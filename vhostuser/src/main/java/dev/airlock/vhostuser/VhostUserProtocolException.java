package dev.airlock.vhostuser;

import java.io.Serial;

/**
 * The front-end sent a message that breaks the vhost-user protocol (or asks for something this
 * back-end refuses). The connection is closed; the message names the request and the field.
 */
public final class VhostUserProtocolException extends RuntimeException {
    @Serial
    private static final long serialVersionUID = 1L;

    /** The field, as named in vhost-user.rst, for example {@code "SET_VRING_NUM.num"}. */
    private final String field;
    /** The offending value (unsigned fields widened without sign). */
    private final long value;

    /**
     * Creates the exception.
     *
     * @param field  the message and field, for example {@code "SET_VRING_ADDR.desc_user_addr"}
     * @param value  the value found
     * @param reason the rule it breaks
     */
    public VhostUserProtocolException(String field, long value, String reason) {
        super(field + " = " + value + " (0x" + Long.toHexString(value) + "): " + reason);
        this.field = field;
        this.value = value;
    }

    /**
     * The message and field that broke the protocol.
     *
     * @return for example {@code "SET_MEM_TABLE.nregions"}
     */
    public String field() {
        return field;
    }

    /**
     * The offending value.
     *
     * @return the value as received
     */
    public long value() {
        return value;
    }
}
