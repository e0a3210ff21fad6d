/** Test support: real guest memory for tests of the parts above {@code memory}. */
module dev.airlock.testkit {
    requires transitive dev.airlock.memory;

    exports dev.airlock.testkit;
}
