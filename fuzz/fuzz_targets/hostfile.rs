//! `cargo +nightly fuzz run hostfile`: see `sluice::fuzzing::hostfile`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::hostfile(data));
