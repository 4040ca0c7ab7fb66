#![no_main]
//! cargo +nightly fuzz run targets -- see authfault::fuzzing::targets.

libfuzzer_sys::fuzz_target!(|data: &[u8]| authfault::fuzzing::targets(data));
