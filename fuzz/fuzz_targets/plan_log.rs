//! `cargo +nightly fuzz run plan_log`: see `sluice::fuzzing::plan_log`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::plan_log(data));
