//! `kafka-offsets`: the course's offset management (seed §4.2.2): count each batch, keep the
//! offsets in the chosen store, and resume where the last run committed.

use sluice::Result;
use sluice::offsets::OffsetStoreKind;

use crate::common::{CommonArgs, KafkaArgs};

/// Flags of `sluice run kafka-offsets`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Where the offsets are kept.
    #[arg(long, value_enum, default_value_t = Store::Kafka)]
    pub store: Store,
    /// URL of the redis/postgres/mysql store or host:port of ZooKeeper (defaults: the local servers on their default ports).
    #[arg(long, value_name = "URL")]
    pub store_url: Option<String>,
}

/// The offset stores (`--store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Store {
    /// The consumer group in Kafka.
    Kafka,
    /// Files in the job's --checkpoint directory.
    Checkpoint,
    /// A Redis hash per topic.
    Redis,
    /// ZooKeeper nodes.
    Zookeeper,
    /// A PostgreSQL table.
    Postgres,
    /// A MySQL/MariaDB table.
    Mysql,
}

fn store(args: &Args, common: &CommonArgs) -> Result<OffsetStoreKind> {
    let url = |default: &str| args.store_url.clone().unwrap_or_else(|| default.to_owned());
    Ok(match args.store {
        Store::Kafka => OffsetStoreKind::Kafka,
        // The job's checkpoint directory (`--checkpoint`), as the course's getOrCreate example.
        Store::Checkpoint => match &common.checkpoint {
            Some(dir) => OffsetStoreKind::Checkpoint(dir.clone()),
            None => {
                return Err(sluice::SluiceError::InvalidConfig {
                    problem: "--store checkpoint keeps the offsets in the job's checkpoint, and there is no --checkpoint".into(),
                    fix: "add --checkpoint DIR, or choose another --store".into(),
                });
            }
        },
        Store::Redis => OffsetStoreKind::Redis(url("redis://127.0.0.1:6379/")),
        Store::Postgres => {
            OffsetStoreKind::Postgres(url("postgres://postgres@127.0.0.1:5432/test"))
        }
        Store::Mysql => OffsetStoreKind::MySql(url("mysql://root@127.0.0.1:3306/test")),
        Store::Zookeeper => OffsetStoreKind::ZooKeeper(url("127.0.0.1:2181")),
    })
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        let kafka = args.kafka.config()?.offset_store(store(&args, common)?);
        crate::kafka_direct::run_with(common, kafka)
    }
}
