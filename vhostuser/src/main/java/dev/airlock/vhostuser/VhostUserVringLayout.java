package dev.airlock.vhostuser;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The vring payloads of vhost-user (vhost-user.rst, "A vring state description", "A vring address
 * description" and the u64 of SET_VRING_KICK/CALL/ERR), host byte order.
 *
 * <pre>
 *  vring state (8 bytes): SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE
 *  0             4             8
 *  +-------------+-------------+
 *  | index (u32) | num (u32)   |
 *  +-------------+-------------+
 *
 *  vring address (40 bytes): SET_VRING_ADDR
 *  0         4         8                16          24           32          40
 *  +---------+---------+----------------+-----------+------------+-----------+
 *  | index   | flags   | desc_user_addr | used_user | avail_user | log_guest |
 *  +---------+---------+----------------+-----------+------------+-----------+
 *  flags bit 0 = VHOST_VRING_F_LOG (dirty logging; not supported here, must be 0)
 *
 *  vring fd (u64): SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR
 *  bits 0-7 queue index | bit 8 VHOST_USER_VRING_NOFD (no fd in the ancillary data) | 9-63 zero
 * </pre>
 *
 * <table>
 *   <caption>Fields</caption>
 *   <tr><th>field</th><th>checked</th></tr>
 *   <tr><td>index</td><td>below the model's queue count</td></tr>
 *   <tr><td>num</td><td>NUM: power of two up to the model's maximum; BASE: at most 0xffff; ENABLE: 0 or 1</td></tr>
 *   <tr><td>ring addresses</td><td>front-end user addresses, aligned (16/2/4), translated through the memory table</td></tr>
 * </table>
 */
final class VhostUserVringLayout {
    /** The vring state. */
    static final StructLayout STATE = MemoryLayout.structLayout(JAVA_INT.withName("index"), JAVA_INT.withName("num"));
    static final long STATE_INDEX_OFFSET = STATE.byteOffset(groupElement("index"));
    static final long STATE_NUM_OFFSET = STATE.byteOffset(groupElement("num"));
    static final int STATE_LENGTH = 8;

    /** The vring address. */
    static final StructLayout ADDR = MemoryLayout.structLayout(
            JAVA_INT.withName("index"),
            JAVA_INT.withName("flags"),
            JAVA_LONG.withName("desc_user_addr"),
            JAVA_LONG.withName("used_user_addr"),
            JAVA_LONG.withName("avail_user_addr"),
            JAVA_LONG.withName("log_guest_addr"));
    static final long ADDR_INDEX_OFFSET = ADDR.byteOffset(groupElement("index"));
    static final long ADDR_FLAGS_OFFSET = ADDR.byteOffset(groupElement("flags"));
    static final long ADDR_DESC_OFFSET = ADDR.byteOffset(groupElement("desc_user_addr"));
    static final long ADDR_USED_OFFSET = ADDR.byteOffset(groupElement("used_user_addr"));
    static final long ADDR_AVAIL_OFFSET = ADDR.byteOffset(groupElement("avail_user_addr"));
    static final int ADDR_LENGTH = 40;

    /** The u64 of SET_VRING_KICK, CALL and ERR. */
    static final int FD_INDEX_MASK = 0xff;
    static final long FD_NOFD_FLAG = 0x100;
    static final int U64_LENGTH = 8;

    static {
        if (STATE.byteSize() != STATE_LENGTH || ADDR.byteSize() != ADDR_LENGTH) {
            throw new ExceptionInInitializerError("vhost-user vring layouts have the wrong size");
        }
    }

    private VhostUserVringLayout() {
    }
}
