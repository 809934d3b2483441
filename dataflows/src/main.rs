//! `sluice`: run the course's streaming jobs from the command line.
//!
//! `sluice run <dataflow> [flags]`; `sluice run --help` lists the dataflows, and
//! `sluice run <dataflow> --help` explains every flag. Worker flags are timely's:
//! `-w/--threads`, `-n/--processes`, `-p/--process`, `-h/--hostfile` (so `-h` is not help).

use sluice::redact::redact;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: records are allocated in one operator and freed in another, the pattern glibc's
/// malloc handles worst; measured 2.2× faster on the word count (see benches/wordcount.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_purge_delay` and `mi_option_allow_thp` (their numbers in its
/// `mimalloc.h`; not among `libmimalloc-sys`'s named options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// The allocator set for a job that needs the same memory again at every batch:
///
/// - Memory freed at the end of a batch is given back to the system after 10 s unused rather
///   than mimalloc's 1 s: giving it back every second made the kernel zero it again each time
///   (`clear_page_erms`, 16 % of the word count's worker time at 2 M words/s; with 10 s, 10 %
///   more words per CPU-second and ~20 MiB more resident). After a burst it still goes back.
/// - No transparent huge pages: with them, the kernel still zeroed 2 MiB pages faulted in by
///   each batch's buffers (`clear_page_erms` under `do_huge_pmd_anonymous_page`, ~20 % of the
///   worker's time); without, 6 % more words per CPU-second and 13 % less resident memory
///   (medians of 15 runs, `benches/HISTORY.md`).
///
/// Either is left as the user set it in `MIMALLOC_PURGE_DELAY` / `MIMALLOC_ALLOW_THP`.
fn tune_allocator_for_batches() {
    for (option, variable, value) in [
        (MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 10_000),
        (MI_OPTION_ALLOW_THP, "MIMALLOC_ALLOW_THP", 0),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: sets one of mimalloc's options, by its number in the bundled v3 header;
            // an option number it does not know is ignored.
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
}

mod batch_line;
mod blacklist_filter;
mod category_top3;
mod common;
mod driver_ha_wordcount;
mod file_wordcount;
mod kafka_direct;
mod kafka_etl;
mod kafka_offsets;
mod kafka_rate_limit;
mod kafka_receiver;
mod kafka_to_sql;
mod kafka_wordcount;
mod logging;
mod network_wordcount;
mod paths;
mod stateful_wordcount;
mod tools;
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
    Run(Box<Dataflows>),
    /// Send lines or generated records to a socket job or a Kafka topic (instead of `nc -lk`).
    #[command(subcommand)]
    Feed(tools::feed::Feed),
    /// Look into a checkpoint directory.
    #[command(subcommand)]
    Checkpoint(tools::checkpoint::CheckpointCmd),
    /// Create or list Kafka topics (instead of kafka-topics.sh).
    #[command(subcommand)]
    Topic(tools::kafka::TopicCmd),
    /// Print a Kafka topic's records as `key<TAB>value` lines (instead of
    /// kafka-console-consumer.sh).
    Consume(tools::kafka::ConsumeArgs),
    /// Serve the web UI of a job that has ended, from its event log (Spark's history server).
    History(tools::history::HistoryArgs),
}

/// One of the course's jobs, as the command line runs it: its own flags, run with the flags
/// every dataflow has.
pub trait Dataflow {
    /// Runs the job until it stops by itself (`--max-batches`) or is stopped (Ctrl-C, SIGTERM).
    fn run(self: Box<Self>, common: &common::CommonArgs) -> sluice::Result<()>;
}

/// A dataflow's own flags beside the flags every dataflow has.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
struct Job<A: clap::Args> {
    #[command(flatten)]
    common: common::CommonArgs,
    #[command(flatten)]
    flags: A,
}

/// Declares the `sluice run` subcommands: one variant per dataflow, each a [`Dataflow`].
macro_rules! dataflows {
    ($($(#[$doc:meta])* $name:ident($args:ty),)*) => {
        /// The ready-made dataflows, one per case of the course.
        #[derive(Subcommand, Debug)]
        enum Dataflows {
            $($(#[$doc])* $name(Job<$args>),)*
        }

        impl Dataflows {
            /// The dataflow's common flags (with its name, the job's identity in a checkpoint)
            /// and the dataflow.
            fn into_dataflow(self) -> (common::CommonArgs, Box<dyn Dataflow>) {
                match self {
                    $(Dataflows::$name(mut job) => {
                        job.common.app = kebab(stringify!($name));
                        (job.common, Box::new(job.flags))
                    })*
                }
            }
        }
    };
}

dataflows! {
    /// Word count per batch of lines from a socket (course §2.2); generated words without --host.
    NetworkWordcount(network_wordcount::Args),
    /// Word count per batch of the new files in a directory: local, S3 or HDFS (course §3).
    FileWordcount(file_wordcount::Args),
    /// Drop access-log lines whose IP is on a blacklist file, re-read on change (course §5.2).
    BlacklistFilter(blacklist_filter::Args),
    /// Running word totals since the start, updateStateByKey (course §5.3).
    StatefulWordcount(stateful_wordcount::Args),
    /// Word counts over a sliding window, reduceByKeyAndWindow (course §5.4).
    WindowedWordcount(windowed_wordcount::Args),
    /// Running sales per brand, top 3 brands per category with SQL's row_number() (course §6).
    CategoryTop3(category_top3::Args),
    /// Kafka direct stream: offset ranges and count of every batch (course §4.2.2).
    KafkaDirect(kafka_direct::Args),
    /// Receiver-based Kafka stream with a write-ahead log: word count per batch (course §4.2.1).
    KafkaReceiver(kafka_receiver::Args),
    /// Kafka direct stream with offsets kept in a store of your choice; resumes (course §4.2.2).
    KafkaOffsets(kafka_offsets::Args),
    /// Kafka direct stream with a rate limit per partition (course §4.3.2).
    KafkaRateLimit(kafka_rate_limit::Args),
    /// Online ETL from Kafka to Kafka with a dead-letter topic (course §4.3.3).
    KafkaEtl(kafka_etl::Args),
    /// `name,orderid` records from Kafka into PostgreSQL, exactly once (course §4.3.1).
    KafkaToPostgres(kafka_to_sql::PostgresArgs),
    /// `name,orderid` records from Kafka into MySQL/MariaDB, exactly once (course §4.3.1).
    KafkaToMysql(kafka_to_sql::MysqlArgs),
    /// Running word count from Kafka to Kafka, checkpointed, exactly once across crashes.
    KafkaWordcount(kafka_wordcount::Args),
    /// Running word count over a socket, restartable from its checkpoint (course §7.3).
    DriverHaWordcount(driver_ha_wordcount::Args),
}

/// `NetworkWordcount` → `network-wordcount`, as clap names the subcommands.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn main() -> ExitCode {
    tune_allocator_for_batches();
    // The command line's secrets (URL passwords, `sasl.password=…`) never appear in what the
    // process prints, logs or serves.
    sluice::redact::register_args(std::env::args());
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    ExitCode::SUCCESS
                }
                _ => {
                    eprint!("{}", redact(&e.render().to_string()));
                    ExitCode::from(2)
                }
            };
        }
    };
    let dataflow = match cli.command {
        Command::Run(dataflow) => *dataflow,
        Command::Feed(feed) => {
            logging::init(0);
            return tool_exit("feed", tools::feed::run(feed));
        }
        Command::Topic(cmd) => {
            logging::init(0);
            return tool_exit("topic", tools::kafka::topic(cmd));
        }
        Command::History(args) => {
            logging::init(0);
            return tool_exit("history", tools::history::run(args));
        }
        Command::Consume(args) => {
            logging::init(0);
            return tool_exit("consume", tools::kafka::consume(args));
        }
        Command::Checkpoint(cmd) => {
            logging::init(0);
            return match tools::checkpoint::run(cmd) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sluice checkpoint: error: {}", redact(&e.to_string()));
                    ExitCode::from(e.exit_code())
                }
            };
        }
    };
    let (common, dataflow) = dataflow.into_dataflow();
    logging::init(common.verbose);
    raise_descriptor_limit();
    match dataflow.run(&common) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: error: {}", redact(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// A tool's exit: 0, or its error on one line (redacted) and 2 for a configuration mistake, 1
/// for the world failing.
fn tool_exit(tool: &str, result: Result<(), tools::feed::FeedError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice {tool}: error: {}", redact(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Raises this process's soft limit of open files to the hard one (as servers do at start):
/// connections, checkpoint files and logs then have room far above the web UI's cap.
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct given, which lives here.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let before = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                tracing::debug!("open-file limit raised from {before} to {}", limit.rlim_max);
            }
        }
    }
}
