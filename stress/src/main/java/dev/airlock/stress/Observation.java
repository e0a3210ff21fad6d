package dev.airlock.stress;

/**
 * What the reading actor of a publication test saw, as the integer a jcstress result carries.
 * Outcome ids in the tests are these numbers.
 */
final class Observation {
    /** Nothing published yet: {@code pop()} returned null, or {@code reap} consumed nothing. */
    static final int NOTHING = 0;
    /** The published entry, with every byte written before the publication visible. */
    static final int OK = 1;
    /** The entry, but the buffer still holds none of the bytes written before the publication. */
    static final int STALE_DATA = 2;
    /** The entry, but only some of the bytes written before the publication are visible. */
    static final int PARTIAL_DATA = 3;
    /** An entry whose descriptor or used element is not the one written (stale ring or descriptor fields). */
    static final int WRONG_ENTRY = 4;
    /** The reader marked the queue broken (it judged the other side to have violated the protocol). */
    static final int FAULT = 5;

    private Observation() {
    }
}
