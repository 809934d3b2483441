//! `cargo +nightly fuzz run write_ahead_log`: see `sluice::fuzzing::write_ahead_log`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::write_ahead_log(data));
