package dev.airlock.cli;

import dev.airlock.cli.machine.ByteSize;
import picocli.CommandLine;

/** picocli converter for byte sizes ({@link ByteSize}). */
final class Sizes implements CommandLine.ITypeConverter<Long> {
    @Override
    public Long convert(String value) {
        try {
            return ByteSize.parse(value);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.TypeConversionException(e.getMessage());
        }
    }

    static String format(long bytes) {
        return ByteSize.format(bytes);
    }
}
