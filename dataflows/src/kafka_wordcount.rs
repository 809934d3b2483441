//! `kafka-wordcount`: a running word count from Kafka to Kafka, exactly once across crashes
//! (course §4.3 + §5.3 + §7.2): words of the records of `--topics`, totals kept by
//! `update_state_by_key` (named `word-totals`, checkpointed to `--checkpoint`), every batch's
//! changed totals produced to `--to` as `word<TAB>total` keyed by the word, in one Kafka
//! transaction per worker and batch.
//!
//! Killed at any point and restarted with the same flags, it restores the totals of the last
//! snapshot, replays the batches after it from their recorded offset ranges (without producing
//! what was already committed) and goes on; a reader with `isolation.level=read_committed`
//! sees each `word total` once, and per word the totals grow one record at a time.

use sluice::sink::kafka::{KafkaSink, OutRecord};
use sluice::{Result, SluiceError, StreamingContext};

use crate::common::{CommonArgs, KafkaArgs, text_of, word_pairs, word_totals};

/// Flags of `sluice run kafka-wordcount`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// The topic the changed totals go to.
    #[arg(long, value_name = "TOPIC")]
    pub to: String,
    /// Produce at least once (no transactions) instead of exactly once.
    #[arg(long)]
    pub at_least_once: bool,
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        if common.checkpoint.is_none() {
            return Err(SluiceError::InvalidConfig {
                problem: "kafka-wordcount keeps running totals, which need a checkpoint".into(),
                fix: "add --checkpoint DIR (a directory kept across restarts)".into(),
            });
        }
        let config = common.config()?;
        let kafka = args.kafka.config()?;
        let sink = KafkaSink::new(args.kafka.brokers.clone());
        let (to, at_least_once) = (args.to.clone(), args.at_least_once);
        StreamingContext::new(config).run(move |job| {
            let words = job
                .kafka_direct_stream(kafka.clone())
                .flat_map(|r| word_pairs(text_of(r.value.unwrap_or_default())));
            let totals = word_totals(&words);
            let changed = totals
                .changes()
                .filter(|(_, d)| *d > 0)
                .map(|((w, n), _)| (w, n));
            // One line per batch that changed totals, on stderr (as the other sink jobs).
            let topic = to.clone();
            changed.count().foreach_batch(move |t, n| {
                let changed: u64 = n.iter().sum();
                if changed > 0 {
                    eprintln!(
                        "batch {} ms: {changed} word totals changed, produced to {topic}",
                        t.millis()
                    );
                }
            });
            let topic = to.clone();
            let out = changed.map(move |(w, n)| {
                OutRecord::new(&topic, format!("{w}\t{n}").into_bytes()).key(w.as_bytes().to_vec())
            });
            if at_least_once {
                out.write_kafka(sink.clone());
            } else {
                out.write_kafka_transactional(sink.clone(), "kafka-wordcount");
            }
        })
    }
}
