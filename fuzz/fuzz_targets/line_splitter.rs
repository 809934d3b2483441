//! `cargo +nightly fuzz run line_splitter`: see `sluice::fuzzing::line_splitter`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::line_splitter(data));
