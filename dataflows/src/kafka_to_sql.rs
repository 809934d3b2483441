//! `kafka-to-postgres` and `kafka-to-mysql`: the course's exactly-once output (seed §4.3.1).
//! Records `name,orderid` from Kafka into a table, in one of two modes:
//!
//! - `idempotent`: upsert into `myorders (name, orderid PRIMARY KEY)`; a replayed batch
//!   rewrites the same rows. Offsets go to the same database after the batch's output.
//! - `transactional`: plain `INSERT` into `mydata (name, id)`, and the batch's offsets, in one
//!   transaction per worker (the course's scalikejdbc `DB.localTx`).
//!
//! Records that are not `name,orderid` (transactional: `id` must be an integer) are counted,
//! logged and appended to `--dead-letter` when given, once each also across crashes (the batch
//! and partition lead each entry); never written to the table, never lost silently.

use sluice::offsets::OffsetStoreKind;
use sluice::sink::SqlValue;
use sluice::source::{DeadLetters, Malformed};
use sluice::{Result, StreamingContext};

use crate::common::{CommonArgs, KafkaArgs};

/// Flags of `sluice run kafka-to-postgres` / `kafka-to-mysql`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// How rows are written.
    #[arg(long, value_enum, default_value_t = Mode::Transactional)]
    pub mode: Mode,
    /// Database URL (default: the local server, database `test`).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Append malformed records to this file.
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<std::path::PathBuf>,
}

/// How the rows reach the table (`--mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Upsert into `myorders`; a replayed batch rewrites the same rows.
    Idempotent,
    /// Rows and offsets in one transaction, into `mydata`.
    Transactional,
}

/// The database a job writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    Postgres,
    MySql,
}

/// Flags of `sluice run kafka-to-postgres`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct PostgresArgs {
    #[command(flatten)]
    pub args: Args,
}

/// Flags of `sluice run kafka-to-mysql`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct MysqlArgs {
    #[command(flatten)]
    pub args: Args,
}

impl crate::Dataflow for PostgresArgs {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        run(self.args, common, Database::Postgres)
    }
}

impl crate::Dataflow for MysqlArgs {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        run(self.args, common, Database::MySql)
    }
}

/// Runs the job until it is stopped.
fn run(args: Args, common: &CommonArgs, db: Database) -> Result<()> {
    let url = args.url.clone().unwrap_or_else(|| match db {
        Database::Postgres => "postgres://postgres@127.0.0.1:5432/test".into(),
        Database::MySql => "mysql://root@127.0.0.1:3306/test".into(),
    });
    let store = match db {
        Database::Postgres => OffsetStoreKind::Postgres(url.clone()),
        Database::MySql => OffsetStoreKind::MySql(url.clone()),
    };
    let transactional = args.mode == Mode::Transactional;
    let dead = match &args.dead_letter {
        Some(p) => {
            crate::paths::dead_letter_file(p)?;
            DeadLetters::to_file(p)?
        }
        None => DeadLetters::counting(),
    };
    let group = args.kafka.group.clone();
    let kafka = args.kafka.config()?.offset_store(store);
    let written = if transactional {
        "rows inserted into mydata with their offsets"
    } else {
        "rows upserted into myorders"
    };
    let counted = dead.clone();
    let config = common.config()?.listener(
        crate::batch_line::BatchLine::new(written).set_aside(Box::new(move || counted.count())),
    );
    let (setup, statement) = match (db, transactional) {
        (Database::Postgres, false) => (
            "CREATE TABLE IF NOT EXISTS myorders (name VARCHAR(20), orderid VARCHAR(100) PRIMARY KEY)",
            "INSERT INTO myorders (name, orderid) VALUES ($1, $2) ON CONFLICT (orderid) DO UPDATE SET name = EXCLUDED.name",
        ),
        (Database::MySql, false) => (
            "CREATE TABLE IF NOT EXISTS myorders (name VARCHAR(20), orderid VARCHAR(100) PRIMARY KEY)",
            "INSERT INTO myorders (name, orderid) VALUES (?, ?) ON DUPLICATE KEY UPDATE name = VALUES(name)",
        ),
        (Database::Postgres, true) => (
            "CREATE TABLE IF NOT EXISTS mydata (name VARCHAR(200), id BIGINT)",
            "INSERT INTO mydata (name, id) VALUES ($1, $2)",
        ),
        (Database::MySql, true) => (
            "CREATE TABLE IF NOT EXISTS mydata (name VARCHAR(200), id BIGINT)",
            "INSERT INTO mydata (name, id) VALUES (?, ?)",
        ),
    };
    StreamingContext::new(config).run(move |job| {
        let stream = job.kafka_direct_stream(kafka.clone());
        // A record that is not a row is set aside (exactly once per batch, see `try_map`).
        let parse =
            move |r: &sluice::source::kafka::ConsumerRecord| -> Result<Vec<SqlValue>, Malformed> {
                let parsed = r
                    .value_str()
                    .and_then(|v| v.split_once(','))
                    .map(|(n, id)| (n.trim().to_owned(), id.trim().to_owned()));
                let row = match parsed {
                    Some((name, id)) if !transactional => {
                        Some(vec![SqlValue::Text(name), SqlValue::Text(id)])
                    }
                    Some((name, id)) => id
                        .parse::<i64>()
                        .ok()
                        .map(|id| vec![SqlValue::Text(name), SqlValue::Int(id)]),
                    None => None,
                };
                row.ok_or_else(|| Malformed {
                    source: format!("kafka {}", r.topic),
                    position: format!("partition {} offset {}", r.partition, r.offset),
                    reason: if transactional {
                        "not `name,id` with an integer id".into()
                    } else {
                        "not `name,orderid`".into()
                    },
                    bytes: r.value.clone().unwrap_or_default(),
                })
            };
        if transactional {
            // The rows go in one transaction with the batch's offsets; the malformed records
            // are set aside before it, so a committed batch has its dead letters written.
            stream
                .set_aside(&dead, move |r| parse(r).map(|_| ()))
                .write_sql_with_offsets(
                    &url,
                    &group,
                    vec![setup.to_owned()],
                    statement,
                    move |r| parse(r).ok(),
                );
        } else {
            stream.try_map(&dead, move |r| parse(&r)).write_sql(
                &url,
                vec![setup.to_owned()],
                statement,
                |row| Some(row.clone()),
            );
        }
    })
}
