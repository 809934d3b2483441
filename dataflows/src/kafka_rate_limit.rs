//! `kafka-rate-limit`: the course's rate limiting (seed §4.3.2): at most
//! `--max-rate-per-partition` records per second per partition, so a 2 s batch over 3
//! partitions at 100/s holds at most 600 records. Prints each batch's count and ranges.

use sluice::Result;

use crate::common::{CommonArgs, KafkaArgs};

/// Flags of `sluice run kafka-rate-limit`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Records per second per partition at most (Spark's spark.streaming.kafka.maxRatePerPartition).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_rate_per_partition: u64,
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        let kafka = args
            .kafka
            .config()?
            .max_rate_per_partition(args.max_rate_per_partition);
        crate::kafka_direct::run_with(common, kafka)
    }
}
