package dev.airlock.swiotlb;

import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The bounce pools of one driver VM: register and unregister pools at run time, find the pool that
 * owns a DMA address (Linux's {@code swiotlb_find_pool}), and choose a pool per device.
 *
 * <p>DMA addresses are guest-physical addresses of one driver's address space, so one registry
 * serves one driver VM; pools registered together must not overlap.
 *
 * <p>Lookups are lock-free: the pools are an immutable array sorted by {@code dmaBase}, replaced
 * whole (copy-on-write) by the rare, synchronized {@link #register} and {@link #unregister}.
 */
public final class SwiotlbPools {
    private static final SwiotlbPool[] NONE = new SwiotlbPool[0];

    private volatile SwiotlbPool[] pools = NONE;
    private final ConcurrentHashMap<String, SwiotlbPool> assignments = new ConcurrentHashMap<>();

    /** Creates an empty registry. */
    public SwiotlbPools() {
    }

    /**
     * Adds a pool.
     *
     * @param pool the pool
     * @throws IllegalArgumentException if its DMA range overlaps a registered pool's, or its name is
     *                                  taken
     */
    public synchronized void register(SwiotlbPool pool) {
        Objects.requireNonNull(pool, "pool");
        long last = lastAddr(pool);
        for (SwiotlbPool p : pools) {
            boolean disjoint = Long.compareUnsigned(last, p.dmaBase()) < 0 || Long.compareUnsigned(lastAddr(p), pool.dmaBase()) < 0;
            if (!disjoint) {
                throw new IllegalArgumentException("pool " + pool + " overlaps registered pool " + p);
            }
            if (p.name().equals(pool.name())) {
                throw new IllegalArgumentException("a pool named '" + pool.name() + "' is already registered");
            }
        }
        SwiotlbPool[] next = Arrays.copyOf(pools, pools.length + 1);
        next[pools.length] = pool;
        Arrays.sort(next, Comparator.comparing(SwiotlbPool::dmaBase, Long::compareUnsigned));
        pools = next;
    }

    /**
     * Removes a pool and every device assignment to it. The caller must have stopped using it
     * (through the DMA operations that hold it) first.
     *
     * @param pool the pool
     * @return whether it was registered
     * @throws IllegalStateException if it still has live mappings or allocations
     */
    public synchronized boolean unregister(SwiotlbPool pool) {
        SwiotlbPool[] current = pools;
        int i = Arrays.asList(current).indexOf(pool);
        if (i < 0) {
            return false;
        }
        long used = pool.stats().usedSlots();
        if (used != 0) {
            throw new IllegalStateException("cannot unregister pool " + pool + ": " + used + " slots are in use");
        }
        SwiotlbPool[] next = new SwiotlbPool[current.length - 1];
        System.arraycopy(current, 0, next, 0, i);
        System.arraycopy(current, i + 1, next, i, current.length - i - 1);
        pools = next;
        assignments.values().removeIf(p -> p == pool);
        return true;
    }

    /**
     * The pool that owns a DMA address. Lock-free.
     *
     * @param dmaAddr a DMA address
     * @return the pool whose range holds it, or {@code null} if none does
     */
    public SwiotlbPool find(long dmaAddr) {
        SwiotlbPool[] current = pools;
        int lo = 0;
        int hi = current.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            SwiotlbPool p = current[mid];
            if (Long.compareUnsigned(dmaAddr, p.dmaBase()) < 0) {
                hi = mid - 1;
            } else if (Long.compareUnsigned(dmaAddr, lastAddr(p)) > 0) {
                lo = mid + 1;
            } else {
                return p;
            }
        }
        return null;
    }

    /**
     * Whether a DMA address lies in a registered pool (Linux's {@code is_swiotlb_buffer}).
     *
     * @param dmaAddr a DMA address
     * @return whether {@link #find} returns a pool
     */
    public boolean isSwiotlbBuffer(long dmaAddr) {
        return find(dmaAddr) != null;
    }

    /**
     * The registered pools, sorted by DMA base.
     *
     * @return an immutable snapshot
     */
    public List<SwiotlbPool> pools() {
        return List.of(pools);
    }

    /**
     * Chooses the pool a device maps through, replacing an earlier choice.
     *
     * @param deviceName the device
     * @param pool       a registered pool
     * @throws IllegalArgumentException if the pool is not registered
     */
    public synchronized void assign(String deviceName, SwiotlbPool pool) {
        Objects.requireNonNull(deviceName, "deviceName");
        Objects.requireNonNull(pool, "pool");
        if (!Arrays.asList(pools).contains(pool)) {
            throw new IllegalArgumentException("cannot assign device '" + deviceName + "' to unregistered pool " + pool);
        }
        assignments.put(deviceName, pool);
    }

    /**
     * Forgets a device's pool.
     *
     * @param deviceName the device
     * @return whether it had one
     */
    public synchronized boolean unassign(String deviceName) {
        return assignments.remove(deviceName) != null;
    }

    /**
     * The pool a device maps through.
     *
     * @param deviceName the device
     * @return the pool given to {@link #assign}, or empty
     */
    public Optional<SwiotlbPool> poolFor(String deviceName) {
        return Optional.ofNullable(assignments.get(deviceName));
    }

    private static long lastAddr(SwiotlbPool pool) {
        return pool.dmaBase() + pool.sizeBytes() - 1;
    }
}
