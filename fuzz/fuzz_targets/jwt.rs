#![no_main]
//! cargo +nightly fuzz run jwt -- see authfault::fuzzing::jwt.

libfuzzer_sys::fuzz_target!(|data: &[u8]| authfault::fuzzing::jwt(data));
