#![no_main]
//! cargo +nightly fuzz run redaction -- see authfault::fuzzing::redaction.

libfuzzer_sys::fuzz_target!(|data: &[u8]| authfault::fuzzing::redaction(data));
