package dev.airlock.virtio;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/**
 * A request whose response is a known function of its request bytes: the device writes
 * {@code out[i % outBytes] ^ 0x5A} (or {@code i ^ 0x5A} with no out bytes) into every writable
 * byte and reports all of them used. The driver checks every byte after the reap.
 */
final class EchoRequest {
    final long id;
    final long[] gpa;
    final int[] length;
    final int outCount;
    final byte[] outData;
    final long inBytes;
    boolean done;

    private EchoRequest(long id, long[] gpa, int[] length, int outCount, byte[] outData, long inBytes) {
        this.id = id;
        this.gpa = gpa;
        this.length = length;
        this.outCount = outCount;
        this.outData = outData;
        this.inBytes = inBytes;
    }

    /** A request of 1 to {@code maxBuffers} buffers of 1 to {@code bed.blockBytes()} bytes, random data. */
    static EchoRequest random(TestBed bed, Random rnd, long id, int maxBuffers) {
        int n = 1 + rnd.nextInt(maxBuffers);
        int outCount = rnd.nextInt(n + 1);
        long[] gpa = new long[n];
        int[] length = new int[n];
        int outBytes = 0;
        long inBytes = 0;
        for (int i = 0; i < n; i++) {
            gpa[i] = bed.allocBuffer();
            length[i] = 1 + rnd.nextInt(rnd.nextBoolean() ? 16 : bed.blockBytes());
            if (i < outCount) {
                outBytes += length[i];
            } else {
                inBytes += length[i];
                bed.driverView(gpa[i], length[i]).fill((byte) 0x11);
            }
        }
        byte[] outData = new byte[outBytes];
        rnd.nextBytes(outData);
        int pos = 0;
        for (int i = 0; i < outCount; i++) {
            MemorySegment.copy(outData, pos, bed.driverView(gpa[i], length[i]), ValueLayout.JAVA_BYTE, 0, length[i]);
            pos += length[i];
        }
        return new EchoRequest(id, gpa, length, outCount, outData, inBytes);
    }

    void fill(ScatterGather sg) {
        sg.clear();
        for (int i = 0; i < gpa.length; i++) {
            if (i < outCount) {
                sg.out(gpa[i], length[i]);
            } else {
                sg.in(gpa[i], length[i]);
            }
        }
    }

    void free(TestBed bed) {
        for (long g : gpa) {
            bed.freeBuffer(g);
        }
    }

    /** The device's side: transforms the chain's readable bytes into its writable bytes. */
    static long echo(DescriptorChain chain) {
        byte[] in = new byte[(int) chain.readableBytes()];
        chain.readFrom(0, MemorySegment.ofArray(in));
        byte[] out = new byte[(int) chain.writableBytes()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) ((in.length == 0 ? i : in[i % in.length]) ^ 0x5A);
        }
        chain.writeTo(0, MemorySegment.ofArray(out));
        return out.length;
    }

    /** The driver's side: checks the response once, and frees the buffers. */
    void complete(TestBed bed, long usedLength) {
        assertFalse(done, () -> "request " + id + " completed twice");
        done = true;
        assertEquals(inBytes, usedLength, () -> "used length of request " + id);
        int pos = 0;
        for (int i = outCount; i < gpa.length; i++) {
            MemorySegment seg = bed.driverView(gpa[i], length[i]);
            for (int b = 0; b < length[i]; b++, pos++) {
                byte expected = (byte) ((outData.length == 0 ? pos : outData[pos % outData.length]) ^ 0x5A);
                if (seg.get(ValueLayout.JAVA_BYTE, b) != expected) {
                    throw new AssertionError("request " + id + ": in byte " + pos + " is " + seg.get(ValueLayout.JAVA_BYTE, b)
                            + ", expected " + expected);
                }
            }
        }
        free(bed);
    }
}
