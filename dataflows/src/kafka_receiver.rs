//! `kafka-receiver`: the course's receiver-based Kafka stream (seed §4.2.1,
//! `KafkaUtils.createStream(ssc, zk, group, topics).map(_._2)`), counting the words of each
//! batch's values. With `--checkpoint` the receiver's write-ahead log is on (the course's
//! `spark.streaming.receiver.writeAheadLog.enable=true`): a job killed and restarted loses no
//! record and counts none twice. Prefer `kafka-direct` and its relatives for new jobs; Spark
//! removed this receiver in 3.0.
//!
//! The receiver is bounded (`--receiver-buffer`, `--receiver-max-rate`); `--backpressure` and
//! `--initial-rate` pace its consumer as Spark's `ReceiverRateController` does.

use sluice::source::SocketOptions;
use sluice::{Result, StreamingContext};

use crate::common::{CommonArgs, KafkaArgs, ReceiverArgs, word_pairs};

/// Flags of `sluice run kafka-receiver`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Do not keep the receiver's write-ahead log even with --checkpoint (records received but
    /// not yet in a finished batch are then lost in a crash, as in Spark's default).
    #[arg(long)]
    pub no_wal: bool,
    #[command(flatten)]
    pub receiver: ReceiverArgs,
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        let kafka = args.kafka.config()?;
        let config = common.config()?;
        let options = if args.no_wal {
            SocketOptions::default().without_write_ahead_log()
        } else {
            SocketOptions::default()
        };
        let options = args.receiver.apply(options)?;
        // The receiver's backpressure paces its consumer (Spark's ReceiverRateController).
        let options = if args.kafka.backpressure {
            options.backpressure(args.kafka.initial_rate, Default::default())
        } else {
            options
        };
        let print = common.print;
        StreamingContext::new(config).run(move |job| {
            job.kafka_receiver_stream(kafka.clone(), options.clone())
                .flat_map(|value: String| word_pairs(value))
                .reduce_by_key(|a, b| a + b)
                .print(print);
        })
    }
}
