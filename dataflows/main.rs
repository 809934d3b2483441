//! `sluice`: run the course's streaming jobs from the command line.
//!
//! `sluice run <dataflow> [flags]`; `sluice run --help` lists the dataflows, and
//! `sluice run <dataflow> --help` explains every flag. Worker flags are timely's:
//! `-w/--threads`, `-n/--processes`, `-p/--process`, `-h/--hostfile` (so `-h` is not help).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: records are allocated in one operator and freed in another, the pattern glibc's
/// malloc handles worst; measured 2.2× faster on the word count (see benches/wordcount.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod blacklist_filter;
mod common;
mod driver_ha_wordcount;
mod kafka_direct;
mod kafka_etl;
mod kafka_offsets;
mod kafka_rate_limit;
mod kafka_to_sql;
mod kafka_wordcount;
mod network_wordcount;
mod stateful_wordcount;
mod windowed_wordcount;

/// Spark Streaming's DStream jobs on timely dataflow.
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one of the ready-made dataflows.
    #[command(subcommand)]
    Run(Dataflow),
}

/// The ready-made dataflows, one per case of the course.
#[derive(Subcommand, Debug)]
enum Dataflow {
    /// Word count per batch of lines from a socket (course §2.2); generated words without --host.
    NetworkWordcount(network_wordcount::Args),
    /// Drop access-log lines whose IP is on a blacklist file, re-read on change (course §5.2).
    BlacklistFilter(blacklist_filter::Args),
    /// Running word totals since the start, updateStateByKey (course §5.3).
    StatefulWordcount(stateful_wordcount::Args),
    /// Word counts over a sliding window, reduceByKeyAndWindow (course §5.4).
    WindowedWordcount(windowed_wordcount::Args),
    /// Kafka direct stream: offset ranges and count of every batch (course §4.2.2).
    KafkaDirect(kafka_direct::Args),
    /// Kafka direct stream with offsets kept in a store of your choice; resumes (course §4.2.2).
    KafkaOffsets(kafka_offsets::Args),
    /// Kafka direct stream with a rate limit per partition (course §4.3.2).
    KafkaRateLimit(kafka_rate_limit::Args),
    /// Online ETL from Kafka to Kafka with a dead-letter topic (course §4.3.3).
    KafkaEtl(kafka_etl::Args),
    /// `name,orderid` records from Kafka into PostgreSQL, exactly once (course §4.3.1).
    KafkaToPostgres(kafka_to_sql::Args),
    /// `name,orderid` records from Kafka into MySQL/MariaDB, exactly once (course §4.3.1).
    KafkaToMysql(kafka_to_sql::Args),
    /// Running word count from Kafka to Kafka, checkpointed, exactly once across crashes.
    KafkaWordcount(kafka_wordcount::Args),
    /// Running word count over a socket, restartable from its checkpoint (course §7.3).
    DriverHaWordcount(driver_ha_wordcount::Args),
}

impl Dataflow {
    fn verbosity(&self) -> u8 {
        match self {
            Dataflow::NetworkWordcount(a) => a.common.verbose,
            Dataflow::BlacklistFilter(a) => a.common.verbose,
            Dataflow::StatefulWordcount(a) => a.common.verbose,
            Dataflow::WindowedWordcount(a) => a.common.verbose,
            Dataflow::KafkaDirect(a) => a.common.verbose,
            Dataflow::KafkaOffsets(a) => a.common.verbose,
            Dataflow::KafkaRateLimit(a) => a.common.verbose,
            Dataflow::KafkaToPostgres(a) | Dataflow::KafkaToMysql(a) => a.common.verbose,
            Dataflow::KafkaEtl(a) => a.common.verbose,
            Dataflow::KafkaWordcount(a) => a.common.verbose,
            Dataflow::DriverHaWordcount(a) => a.common.verbose,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    let Command::Run(dataflow) = cli.command;
    sluice::logging::init(dataflow.verbosity());
    let result = match dataflow {
        Dataflow::NetworkWordcount(args) => network_wordcount::run(args),
        Dataflow::BlacklistFilter(args) => blacklist_filter::run(args),
        Dataflow::StatefulWordcount(args) => stateful_wordcount::run(args),
        Dataflow::WindowedWordcount(args) => windowed_wordcount::run(args),
        Dataflow::KafkaDirect(args) => kafka_direct::run(args),
        Dataflow::KafkaOffsets(args) => kafka_offsets::run(args),
        Dataflow::KafkaRateLimit(args) => kafka_rate_limit::run(args),
        Dataflow::KafkaEtl(args) => kafka_etl::run(args),
        Dataflow::KafkaWordcount(args) => kafka_wordcount::run(args),
        Dataflow::DriverHaWordcount(args) => driver_ha_wordcount::run(args),
        Dataflow::KafkaToPostgres(args) => {
            kafka_to_sql::run(args, kafka_to_sql::Database::Postgres)
        }
        Dataflow::KafkaToMysql(args) => kafka_to_sql::run(args, kafka_to_sql::Database::MySql),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: error: {e}");
            match e {
                sluice::SluiceError::InvalidBatchInterval { .. }
                | sluice::SluiceError::InvalidConfig { .. }
                | sluice::SluiceError::Hostfile { .. }
                | sluice::SluiceError::NotAMultipleOfBatch { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}
