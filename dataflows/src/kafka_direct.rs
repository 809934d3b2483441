//! `kafka-direct`: the course's direct stream (seed §4.2.2): for every non-empty batch, the
//! offset range of every partition (`topic:…\tpartition:…\tstart:…\tend:…`) and the batch's
//! record count.

use sluice::dstream::stateless::Either;
use sluice::{Result, StreamingContext};

use crate::common::{CommonArgs, KafkaArgs};

/// Flags of `sluice run kafka-direct`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// Prints the ranges and count of each non-empty batch.
pub(crate) fn print_ranges_and_count(
    time: sluice::Time,
    items: Vec<Either<sluice::offsets::OffsetRange, u64>>,
) {
    let count: u64 = items
        .iter()
        .filter_map(|i| {
            if let Either::Right(n) = i {
                Some(*n)
            } else {
                None
            }
        })
        .sum();
    if count == 0 {
        return;
    }
    let mut ranges: Vec<_> = items
        .into_iter()
        .filter_map(|i| {
            if let Either::Left(r) = i {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    ranges.sort();
    let mut text = format!("Time: {time}\n");
    for r in ranges {
        text.push_str(&format!(
            "topic:{}\tpartition:{}\tstart:{}\tend:{}\n",
            r.topic, r.partition, r.from, r.until
        ));
    }
    text.push_str(&format!("count: {count}\n"));
    print!("{text}");
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        run_with(common, args.kafka.config()?)
    }
}

/// The direct stream printing ranges and counts, shared by the Kafka dataflows.
pub(crate) fn run_with(
    common: &CommonArgs,
    kafka: sluice::source::kafka::KafkaConfig,
) -> Result<()> {
    let config = common.config()?;
    StreamingContext::new(config).run(move |job| {
        let stream = job.kafka_direct_stream(kafka.clone());
        let counted = stream.count().map(Either::Right);
        stream
            .offset_ranges()
            .map(Either::Left)
            .union(&counted)
            .foreach_batch(print_ranges_and_count);
    })
}
