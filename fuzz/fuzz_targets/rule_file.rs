#![no_main]
//! cargo +nightly fuzz run rule_file -- see authfault::fuzzing::rule_file.

libfuzzer_sys::fuzz_target!(|data: &[u8]| authfault::fuzzing::rule_file(data));
