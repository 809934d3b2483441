//! `cargo +nightly fuzz run framed_file`: see `sluice::fuzzing::framed_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::framed_file(data));
