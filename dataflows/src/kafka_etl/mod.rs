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

pub(crate) mod clean;
pub use clean::{Rejected, clean};

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

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        let zone =
            jiff::tz::TimeZone::get(&args.time_zone).map_err(|e| SluiceError::InvalidConfig {
                problem: format!("`{}` is not a time zone ({e})", args.time_zone),
                fix: "give an IANA name such as Asia/Shanghai or UTC".into(),
            })?;
        let rejected = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = std::sync::Arc::clone(&rejected);
        let config = common.config()?.listener(
            crate::batch_line::BatchLine::new(format!("cleaned into {}", args.target)).set_aside(
                Box::new(move || counted.load(std::sync::atomic::Ordering::Relaxed)),
            ),
        );
        let kafka = args.kafka.config()?;
        let (brokers, target, dead) = (
            args.kafka.brokers.clone(),
            args.target.clone(),
            args.dead_letter_topic.clone(),
        );
        let (exactly_once, group) = (args.exactly_once, args.kafka.group.clone());
        StreamingContext::new(config).run(move |job| {
            let zone = zone.clone();
            let rejected = std::sync::Arc::clone(&rejected);
            let (target, dead) = (target.clone(), dead.clone());
            let transform = move |r: &sluice::source::kafka::ConsumerRecord| -> OutRecord {
                match clean(r.value_str().unwrap_or(""), &zone) {
                    Ok(line) => OutRecord::new(&target, line.into_bytes()),
                    Err(Rejected(reason)) => {
                        rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
