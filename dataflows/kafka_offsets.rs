//! `kafka-offsets`: the course's offset management (seed §4.2.2): count each batch, keep the
//! offsets in the chosen store, and resume where the last run committed.

use std::path::PathBuf;

use sluice::offsets::OffsetStoreKind;
use sluice::{Result, SluiceError};

use crate::common::{CommonArgs, KafkaArgs};

/// Flags of `sluice run kafka-offsets`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Offset store: kafka, checkpoint, redis, zookeeper, postgres or mysql.
    #[arg(long, default_value = "kafka", value_name = "STORE")]
    pub store: String,
    /// URL of the redis/postgres/mysql store or host:port of ZooKeeper (defaults: the local servers on their default ports).
    #[arg(long, value_name = "URL")]
    pub store_url: Option<String>,
}

fn store(args: &Args) -> Result<OffsetStoreKind> {
    let url = |default: &str| args.store_url.clone().unwrap_or_else(|| default.to_owned());
    Ok(match args.store.as_str() {
        "kafka" => OffsetStoreKind::Kafka,
        // The job's checkpoint directory (`--checkpoint`), as the course's getOrCreate example.
        "checkpoint" => OffsetStoreKind::Checkpoint(
            args.common
                .checkpoint
                .clone()
                .unwrap_or_else(|| PathBuf::from("sluice-checkpoint")),
        ),
        "redis" => OffsetStoreKind::Redis(url("redis://127.0.0.1:6379/")),
        "postgres" => OffsetStoreKind::Postgres(url("postgres://postgres@127.0.0.1:5432/test")),
        "mysql" => OffsetStoreKind::MySql(url("mysql://root@127.0.0.1:3306/test")),
        "zookeeper" => OffsetStoreKind::ZooKeeper(url("127.0.0.1:2181")),
        other => {
            return Err(SluiceError::InvalidConfig {
                problem: format!("`{other}` is not an offset store"),
                fix: "use --store kafka, checkpoint, redis, zookeeper, postgres or mysql".into(),
            })
        }
    })
}

/// Runs the job until it is stopped.
pub fn run(args: Args) -> Result<()> {
    let kafka = args.kafka.config()?.offset_store(store(&args)?);
    crate::kafka_direct::run_with(&args.common, kafka)
}
