//! Kafka around a job, without Kafka's console tools: `sluice topic create` (a topic with N
//! partitions, as `kafka-topics.sh --create`), `sluice topic list`, and `sluice consume` (a
//! topic's records as `key<TAB>value` lines, as `kafka-console-consumer.sh`), plus the check
//! every tool makes first: the brokers resolve (exit 2 otherwise) and answer (exit 1 within
//! seconds otherwise, in one line, instead of librdkafka's retries and log lines).

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::feed::FeedError;

/// How long a tool waits for a broker to answer before it says none does.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// `sluice topic …`.
#[derive(clap::Subcommand, Debug)]
pub enum TopicCmd {
    /// Create a topic (kafka-topics.sh --create).
    Create {
        /// The topic.
        name: String,
        /// Its number of partitions.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        partitions: i32,
        /// Its replication factor.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..))]
        replication: i32,
        /// Succeed when it exists already (with any number of partitions: it is printed).
        #[arg(long)]
        if_not_exists: bool,
        #[command(flatten)]
        brokers: Brokers,
    },
    /// List the topics and their partitions.
    List {
        #[command(flatten)]
        brokers: Brokers,
    },
}

/// The `--brokers` flag of the Kafka tools.
#[derive(clap::Args, Debug)]
pub struct Brokers {
    /// Bootstrap servers, host:port[,host:port…].
    #[arg(
        long,
        env = "SLUICE_BROKERS",
        default_value = "127.0.0.1:9092",
        value_name = "LIST"
    )]
    pub brokers: String,
}

/// `sluice consume`: a topic's records on standard output.
#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// The topic.
    #[arg(long)]
    pub topic: String,
    /// From the first record kept (default: only records that arrive from now on).
    #[arg(long)]
    pub from_beginning: bool,
    /// read_committed: only records of committed transactions (and no aborted ones).
    #[arg(long, value_parser = ["read_committed", "read_uncommitted"], default_value = "read_uncommitted")]
    pub isolation: String,
    /// Stop after this many records.
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    /// Stop once no record came for this long (e.g. 5s; default: run until Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = crate::common::duration)]
    pub idle: Option<Duration>,
    #[command(flatten)]
    pub brokers: Brokers,
}

/// A client context that keeps librdkafka's own log lines and error callbacks quiet: a tool
/// reports one line of its own.
#[derive(Clone, Default)]
pub struct Quiet;

impl ClientContext for Quiet {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, _: rdkafka::error::KafkaError, _: &str) {}
}

impl ConsumerContext for Quiet {}

fn config_error(e: sluice::SluiceError) -> FeedError {
    match e {
        sluice::SluiceError::InvalidConfig { problem, fix } => FeedError::Config { problem, fix },
        other => FeedError::World(other.to_string()),
    }
}

/// Checks that `brokers` resolve (a configuration mistake otherwise) and that one answers
/// within [`ANSWER_WITHIN`] (the world failing otherwise); the topics it knows, with their
/// partition counts.
pub fn reach(brokers: &str) -> Result<Vec<(String, usize)>, FeedError> {
    sluice::source::kafka::config::check_brokers(brokers).map_err(config_error)?;
    let consumer: BaseConsumer<Quiet> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "sluice-tools")
        .create_with_context(Quiet)
        .map_err(|e| FeedError::Config {
            problem: format!("cannot make a Kafka client for {brokers}: {e}"),
            fix: "give --brokers as host:port[,host:port…]".into(),
        })?;
    let metadata = consumer.fetch_metadata(None, ANSWER_WITHIN).map_err(|e| {
        FeedError::World(format!(
            "no Kafka broker answers at {brokers} within {} s ({e}): is it running?",
            ANSWER_WITHIN.as_secs()
        ))
    })?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect())
}

/// Runs `sluice topic …`.
pub fn topic(cmd: TopicCmd) -> Result<(), FeedError> {
    match cmd {
        TopicCmd::List { brokers } => {
            let mut topics = reach(&brokers.brokers)?;
            topics.sort();
            for (name, partitions) in topics {
                println!("{name}\t{partitions} partitions");
            }
            Ok(())
        }
        TopicCmd::Create {
            name,
            partitions,
            replication,
            if_not_exists,
            brokers,
        } => create(
            &brokers.brokers,
            &name,
            partitions,
            replication,
            if_not_exists,
        ),
    }
}

fn create(
    brokers: &str,
    name: &str,
    partitions: i32,
    replication: i32,
    if_not_exists: bool,
) -> Result<(), FeedError> {
    if let Some((_, n)) = reach(brokers)?.into_iter().find(|(t, _)| t == name) {
        if if_not_exists {
            eprintln!("sluice topic: {name} exists already, with {n} partitions");
            return Ok(());
        }
        return Err(FeedError::Config {
            problem: format!("the topic {name} exists already, with {n} partitions"),
            fix: "choose another name, or add --if-not-exists".into(),
        });
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| FeedError::World(format!("cannot make a Kafka admin client: {e}")))?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
    let options = AdminOptions::new().operation_timeout(Some(ANSWER_WITHIN));
    let results = futures::executor::block_on(admin.create_topics([&topic], &options))
        .map_err(|e| FeedError::World(format!("cannot create {name}: {e}")))?;
    for result in results {
        if let Err((topic, code)) = result {
            return Err(FeedError::World(format!("cannot create {topic}: {code}")));
        }
    }
    // The broker has it once its metadata lists every partition.
    let deadline = Instant::now() + ANSWER_WITHIN;
    loop {
        let found = reach(brokers)?
            .into_iter()
            .find(|(t, _)| t == name)
            .map(|(_, n)| n);
        if found == Some(partitions as usize) {
            break;
        }
        if Instant::now() >= deadline {
            return Err(FeedError::World(format!(
                "created {name}, but the broker lists {found:?} partitions of {partitions} after {} s",
                ANSWER_WITHIN.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("sluice topic: created {name} with {partitions} partitions");
    Ok(())
}

/// Runs `sluice consume`: prints `key<TAB>value` per record (an empty key when there is none)
/// until `--max` records, `--idle` without one, or Ctrl-C.
pub fn consume(args: ConsumeArgs) -> Result<(), FeedError> {
    use std::io::Write;
    let topics = reach(&args.brokers.brokers)?;
    let Some((_, partitions)) = topics.iter().find(|(t, _)| *t == args.topic) else {
        return Err(FeedError::Config {
            problem: format!("the topic {} does not exist", args.topic),
            fix: "create it with `sluice topic create NAME --partitions N`, or check the name"
                .into(),
        });
    };
    let consumer: BaseConsumer<Quiet> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers.brokers)
        .set("group.id", "sluice-consume")
        .set("enable.auto.commit", "false")
        .set("isolation.level", &args.isolation)
        .create_with_context(Quiet)
        .map_err(|e| FeedError::World(format!("cannot make a Kafka consumer: {e}")))?;
    let start = if args.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut assignment = TopicPartitionList::new();
    for p in 0..*partitions as i32 {
        assignment
            .add_partition_offset(&args.topic, p, start)
            .map_err(|e| FeedError::World(format!("cannot assign {}: {e}", args.topic)))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| FeedError::World(format!("cannot assign {}: {e}", args.topic)))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut seen = 0u64;
    let mut last = Instant::now();
    while args.max.is_none_or(|m| seen < m) {
        if args.idle.is_some_and(|idle| last.elapsed() >= idle) {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {
                let _ = out.flush();
            }
            Some(Err(e)) => {
                return Err(FeedError::World(format!(
                    "reading {} failed: {e}",
                    args.topic
                )));
            }
            Some(Ok(m)) => {
                let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                let value = m.payload().map(String::from_utf8_lossy).unwrap_or_default();
                writeln!(out, "{key}\t{value}")
                    .map_err(|e| FeedError::World(format!("cannot write: {e}")))?;
                seen += 1;
                last = Instant::now();
            }
        }
    }
    out.flush()
        .map_err(|e| FeedError::World(format!("cannot write: {e}")))?;
    eprintln!("sluice consume: {seen} records from {}", args.topic);
    Ok(())
}
