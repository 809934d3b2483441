//! `cargo +nightly fuzz run etl_record`: the ETL record parser of `sluice run kafka-etl`, on
//! any bytes, in UTC and at a fixed offset; a cleaned record has the course's 7 parts.
#![no_main]

#[path = "../../dataflows/src/kafka_etl/clean.rs"]
mod clean;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data);
    for zone in [
        jiff::tz::TimeZone::UTC,
        jiff::tz::TimeZone::fixed(jiff::tz::offset(8)),
    ] {
        if let Ok(line) = clean::clean(&value, &zone) {
            assert!(line.split('|').count() >= 5, "{line}");
        }
    }
});
