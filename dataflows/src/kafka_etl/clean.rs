//! The ETL record parser (seed §4.3.3): one record of 15 comma-separated fields, each wrapped
//! in `<<<!>>>`, to `userid|timestamp|clientIp:clientPort|serverIp:serverPort|url`. Outside
//! bytes: fuzzed by `fuzz/fuzz_targets/etl_record.rs`, which includes this file (so it uses
//! nothing but `jiff`).

/// Why a record is malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected(pub String);

/// Cleans one record: `userid|epoch ms|clientIp:clientPort|serverIp:serverPort|url`.
pub fn clean(value: &str, zone: &jiff::tz::TimeZone) -> std::result::Result<String, Rejected> {
    let fields: Vec<&str> = value.split(',').collect();
    if fields.len() != 15 {
        return Err(Rejected(format!("{} fields instead of 15", fields.len())));
    }
    let field = |i: usize| -> std::result::Result<&str, Rejected> {
        let f = fields[i].trim();
        match f
            .strip_prefix("<<<!>>>")
            .and_then(|f| f.strip_suffix("<<<!>>>"))
        {
            Some(inner) => Ok(inner),
            None => Err(Rejected(format!(
                "field {} is not wrapped in <<<!>>>",
                i + 1
            ))),
        }
    };
    let time = field(2)?;
    let civil = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", time)
        .map_err(|e| Rejected(format!("time `{time}` is not yyyyMMddHHmmss ({e})")))?;
    let stamp = zone
        .to_timestamp(civil)
        .map_err(|e| Rejected(format!("time `{time}`: {e}")))?
        .as_millisecond();
    Ok(format!(
        "{}|{}|{}:{}|{}:{}|{}",
        field(1)?,
        stamp,
        field(3)?,
        field(5)?,
        field(4)?,
        field(6)?,
        field(13)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "<<<!>>>3111<<<!>>>,<<<!>>>238<<<!>>>,<<<!>>>20181111132902<<<!>>>,<<<!>>>58.223.1.112<<<!>>>,\
<<<!>>>202.102.92.18<<<!>>>,<<<!>>>59947<<<!>>>,<<<!>>>80<<<!>>>,<<<!>>>www.sumecjob.com<<<!>>>,<<<!>>><<<!>>>,\
<<<!>>><<<!>>>,<<<!>>><<<!>>>,<<<!>>><<<!>>>,<<<!>>><<<!>>>,<<<!>>>http://www.sumecjob.com/Social.aspx<<<!>>>,<<<!>>>2556928066<<<!>>>";

    #[test]
    fn the_courses_record_is_cleaned() {
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        // 2018-11-11 13:29:02 in Shanghai (UTC+8) is 05:29:02 UTC.
        assert_eq!(
            clean(SAMPLE, &shanghai).unwrap(),
            "238|1541914142000|58.223.1.112:59947|202.102.92.18:80|http://www.sumecjob.com/Social.aspx"
        );
        assert_eq!(
            clean(SAMPLE, &jiff::tz::TimeZone::UTC)
                .unwrap()
                .split('|')
                .nth(1),
            Some("1541942942000")
        );
    }

    #[test]
    fn malformed_records_say_why() {
        let utc = jiff::tz::TimeZone::UTC;
        assert!(clean("a,b,c", &utc).unwrap_err().0.contains("3 fields"));
        assert!(
            clean(&SAMPLE.replace("20181111132902", "2018-11-11"), &utc)
                .unwrap_err()
                .0
                .contains("yyyyMMddHHmmss")
        );
        assert!(
            clean(&SAMPLE.replacen("<<<!>>>238<<<!>>>", "238", 1), &utc)
                .unwrap_err()
                .0
                .contains("field 2")
        );
    }
}

#[cfg(test)]
mod corpus {
    /// Every input of the ETL record's fuzz corpus, once (the other targets' corpora are
    /// replayed by the library's `tests/fuzz_corpus.rs`).
    #[test]
    fn the_fuzz_corpus_parses_without_a_panic() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/etl_record");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/etl_record") {
            let data = std::fs::read(entry.expect("entry").path()).expect("input");
            let value = String::from_utf8_lossy(&data);
            let _ = super::clean(&value, &jiff::tz::TimeZone::UTC);
            n += 1;
        }
        assert!(n > 0);
    }
}
