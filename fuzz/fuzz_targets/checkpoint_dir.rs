//! `cargo +nightly fuzz run checkpoint_dir`: see `sluice::fuzzing::checkpoint_dir`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::checkpoint_dir(data));
