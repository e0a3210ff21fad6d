package dev.airlock.vhostuser;

/** The front-end request codes of vhost-user.rst ("Front-end message types") and the feature bits. */
final class VhostUserRequest {
    static final int GET_FEATURES = 1;
    static final int SET_FEATURES = 2;
    static final int SET_OWNER = 3;
    static final int RESET_OWNER = 4;
    static final int SET_MEM_TABLE = 5;
    static final int SET_LOG_BASE = 6;
    static final int SET_LOG_FD = 7;
    static final int SET_VRING_NUM = 8;
    static final int SET_VRING_ADDR = 9;
    static final int SET_VRING_BASE = 10;
    static final int GET_VRING_BASE = 11;
    static final int SET_VRING_KICK = 12;
    static final int SET_VRING_CALL = 13;
    static final int SET_VRING_ERR = 14;
    static final int GET_PROTOCOL_FEATURES = 15;
    static final int SET_PROTOCOL_FEATURES = 16;
    static final int GET_QUEUE_NUM = 17;
    static final int SET_VRING_ENABLE = 18;
    static final int GET_CONFIG = 24;
    static final int SET_CONFIG = 25;
    static final int GET_INFLIGHT_FD = 31;
    static final int SET_INFLIGHT_FD = 32;
    static final int RESET_DEVICE = 34;
    static final int GET_MAX_MEM_SLOTS = 36;
    static final int ADD_MEM_REG = 37;
    static final int REM_MEM_REG = 38;

    /** VHOST_USER_F_PROTOCOL_FEATURES: the (legacy, unused) virtio feature bit 30. */
    static final int F_PROTOCOL_FEATURES = 30;
    /** VHOST_F_LOG_ALL: dirty logging for migration; never offered here. */
    static final int F_LOG_ALL = 26;

    static final int PROTOCOL_F_MQ = 0;
    static final int PROTOCOL_F_REPLY_ACK = 3;
    static final int PROTOCOL_F_CONFIG = 9;
    static final int PROTOCOL_F_INFLIGHT_SHMFD = 12;
    static final int PROTOCOL_F_RESET_DEVICE = 13;
    static final int PROTOCOL_F_CONFIGURE_MEM_SLOTS = 15;

    /** The protocol features this back-end offers. */
    static final long SUPPORTED_PROTOCOL_FEATURES = 1L << PROTOCOL_F_MQ | 1L << PROTOCOL_F_REPLY_ACK
            | 1L << PROTOCOL_F_CONFIG | 1L << PROTOCOL_F_INFLIGHT_SHMFD | 1L << PROTOCOL_F_RESET_DEVICE
            | 1L << PROTOCOL_F_CONFIGURE_MEM_SLOTS;

    private VhostUserRequest() {
    }

    /** The spec name of a request, for log lines. */
    static String name(int request) {
        return switch (request) {
            case GET_FEATURES -> "GET_FEATURES";
            case SET_FEATURES -> "SET_FEATURES";
            case SET_OWNER -> "SET_OWNER";
            case RESET_OWNER -> "RESET_OWNER";
            case SET_MEM_TABLE -> "SET_MEM_TABLE";
            case SET_LOG_BASE -> "SET_LOG_BASE";
            case SET_LOG_FD -> "SET_LOG_FD";
            case SET_VRING_NUM -> "SET_VRING_NUM";
            case SET_VRING_ADDR -> "SET_VRING_ADDR";
            case SET_VRING_BASE -> "SET_VRING_BASE";
            case GET_VRING_BASE -> "GET_VRING_BASE";
            case SET_VRING_KICK -> "SET_VRING_KICK";
            case SET_VRING_CALL -> "SET_VRING_CALL";
            case SET_VRING_ERR -> "SET_VRING_ERR";
            case GET_PROTOCOL_FEATURES -> "GET_PROTOCOL_FEATURES";
            case SET_PROTOCOL_FEATURES -> "SET_PROTOCOL_FEATURES";
            case GET_QUEUE_NUM -> "GET_QUEUE_NUM";
            case SET_VRING_ENABLE -> "SET_VRING_ENABLE";
            case GET_CONFIG -> "GET_CONFIG";
            case SET_CONFIG -> "SET_CONFIG";
            case GET_INFLIGHT_FD -> "GET_INFLIGHT_FD";
            case SET_INFLIGHT_FD -> "SET_INFLIGHT_FD";
            case RESET_DEVICE -> "RESET_DEVICE";
            case GET_MAX_MEM_SLOTS -> "GET_MAX_MEM_SLOTS";
            case ADD_MEM_REG -> "ADD_MEM_REG";
            case REM_MEM_REG -> "REM_MEM_REG";
            default -> "request " + Integer.toUnsignedString(request);
        };
    }
}
