package dev.airlock.cli.machine;

import java.util.Locale;

/** Byte sizes as people write them: {@code 4096}, {@code 64K}, {@code 16M}, {@code 1G} (powers of 1024). */
public final class ByteSize {
    private ByteSize() {
    }

    /**
     * Parses a size.
     *
     * @param value digits with an optional K, M, G or T suffix (and optional iB or B)
     * @return bytes
     * @throws IllegalArgumentException if it is not a size or overflows
     */
    public static long parse(String value) {
        String v = value.strip().toUpperCase(Locale.ROOT);
        if (v.endsWith("IB")) {
            v = v.substring(0, v.length() - 2);
        } else if (v.endsWith("B")) {
            v = v.substring(0, v.length() - 1);
        }
        int shift = v.isEmpty() ? 0 : switch (v.charAt(v.length() - 1)) {
            case 'K' -> 10;
            case 'M' -> 20;
            case 'G' -> 30;
            case 'T' -> 40;
            default -> 0;
        };
        String digits = shift > 0 ? v.substring(0, v.length() - 1) : v;
        long n;
        try {
            n = Long.parseLong(digits);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a size: '" + value + "' (examples: 4096, 64K, 16M, 1G)");
        }
        if (n < 0 || n > (Long.MAX_VALUE >> shift)) {
            throw new IllegalArgumentException("size out of range: '" + value + "'");
        }
        return n << shift;
    }

    /**
     * Formats a size in the largest unit that divides it.
     *
     * @param bytes the size
     * @return for example {@code 64 MiB}
     */
    public static String format(long bytes) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB"};
        int unit = 0;
        long n = bytes;
        while (unit < units.length - 1 && n >= 1024 && n % 1024 == 0) {
            n /= 1024;
            unit++;
        }
        return n + " " + units[unit];
    }

    /**
     * Formats a size with one decimal in the largest unit below it.
     *
     * @param bytes the size
     * @return for example {@code 192.2 MiB}
     */
    public static String human(long bytes) {
        String[] units = {"B", "KiB", "MiB", "GiB", "TiB"};
        double n = bytes;
        int unit = 0;
        while (unit < units.length - 1 && n >= 1024) {
            n /= 1024;
            unit++;
        }
        return unit == 0 ? bytes + " B" : String.format("%.1f %s", n, units[unit]);
    }
}
