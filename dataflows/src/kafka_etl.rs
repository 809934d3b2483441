//! `kafka-etl`: the course's online ETL (seed §4.3.3): records of 15 comma-separated fields,
//! each wrapped in `<<<!>>>`, are cleaned to `userid|timestamp|clientIp:clientPort|serverIp:serverPort|url`
//! (the time `yyyyMMddHHmmss`, read in `--time-zone`, becomes epoch milliseconds) and written to
//! the target topic. Malformed records are counted and sent, as they came, to the dead-letter
//! topic with the reason in a header; none is dropped silently.
//!
//! Output is at-least-once: one producer per worker, reused across batches; a batch's offsets
//! are committed only after the producer has flushed every record of it.

use sluice::sink::kafka::{KafkaSink, OutRecord};
use sluice::{Result, SluiceError, StreamingContext};

use crate::common::{CommonArgs, KafkaArgs};

/// Flags of `sluice run kafka-etl`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Topic the cleaned records go to.
    #[arg(long, default_value = "target", value_name = "TOPIC")]
    pub target: String,
    /// Topic malformed records go to.
    #[arg(long, default_value = "target-dead-letter", value_name = "TOPIC")]
    pub dead_letter_topic: String,
    /// Time zone of the records' times (IANA name).
    #[arg(long, default_value = "Asia/Shanghai", value_name = "ZONE")]
    pub time_zone: String,
    /// Exactly once: records and offsets in one Kafka transaction per worker and batch (read the
    /// target with isolation.level=read_committed).
    #[arg(long)]
    pub exactly_once: bool,
}

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

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        let zone =
            jiff::tz::TimeZone::get(&args.time_zone).map_err(|e| SluiceError::InvalidConfig {
                problem: format!("`{}` is not a time zone ({e})", args.time_zone),
                fix: "give an IANA name such as Asia/Shanghai or UTC".into(),
            })?;
        let config = common.config()?;
        let kafka = args.kafka.config()?;
        let (brokers, target, dead) = (
            args.kafka.brokers.clone(),
            args.target.clone(),
            args.dead_letter_topic.clone(),
        );
        let (exactly_once, group) = (args.exactly_once, args.kafka.group.clone());
        StreamingContext::new(config).run(move |job| {
            let zone = zone.clone();
            let (target, dead) = (target.clone(), dead.clone());
            let transform = move |r: &sluice::source::kafka::ConsumerRecord| -> OutRecord {
                match clean(r.value_str().unwrap_or(""), &zone) {
                    Ok(line) => OutRecord::new(&target, line.into_bytes()),
                    Err(Rejected(reason)) => {
                        OutRecord::new(&dead, r.value.clone().unwrap_or_default())
                            .header("sluice-error", reason.into_bytes())
                            .header(
                                "sluice-source",
                                format!("{}/{}/{}", r.topic, r.partition, r.offset).into_bytes(),
                            )
                    }
                }
            };
            let stream = job.kafka_direct_stream(kafka.clone());
            if exactly_once {
                stream.write_kafka_exactly_once(
                    KafkaSink::new(brokers.clone()),
                    "kafka-etl",
                    &group,
                    move |r| vec![transform(r)],
                );
            } else {
                stream
                    .map(move |r| transform(&r))
                    .write_kafka(KafkaSink::new(brokers.clone()));
            }
        })
    }
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
        assert_eq!(clean(SAMPLE, &shanghai).unwrap(), "238|1541914142000|58.223.1.112:59947|202.102.92.18:80|http://www.sumecjob.com/Social.aspx");
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
        assert!(clean(&SAMPLE.replace("20181111132902", "2018-11-11"), &utc)
            .unwrap_err()
            .0
            .contains("yyyyMMddHHmmss"));
        assert!(clean(&SAMPLE.replacen("<<<!>>>238<<<!>>>", "238", 1), &utc)
            .unwrap_err()
            .0
            .contains("field 2"));
    }
}
