#![no_main]
//! cargo +nightly fuzz run mutations -- see authfault::fuzzing::mutations.

libfuzzer_sys::fuzz_target!(|data: &[u8]| authfault::fuzzing::mutations(data));
