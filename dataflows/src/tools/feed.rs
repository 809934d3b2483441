//! `sluice feed socket` and `sluice feed kafka`: send lines (standard input, a file, or
//! generated records of a course format) to a socket job or a Kafka topic, at a rate if asked.
//!
//! `feed socket` is `nc -lk PORT` as the course uses it: it listens, serves one connection at a
//! time, and when a connection goes away it waits for the next one and goes on from the line
//! whose write failed (lines already handed to the lost connection, in its buffers, are lost
//! with it, as with `nc`). At the end of the input it closes the connection and exits, unless
//! `--keep-open` keeps it open (a receiver then never sees the end of its stream).
//!
//! `feed kafka` produces each line as one record (no key: the producer spreads records over
//! the partitions), waits until every record is acknowledged, and says how many it sent; a
//! record the broker refuses ends it with exit 1 and the broker's reason.

use std::io::{BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::records::{Generator, Kind};

/// Where the lines come from, and how fast they go.
#[derive(clap::Args, Debug)]
pub struct Input {
    /// Lines of this file (`-`: standard input, the default).
    #[arg(long, value_name = "FILE", conflicts_with = "generate")]
    file: Option<std::path::PathBuf>,
    /// Generate records of a course format instead of reading lines.
    #[arg(long, value_name = "KIND")]
    generate: Option<Kind>,
    /// At most this many lines per second (default: as fast as the other side takes them).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Stop after this many lines (generated input is endless without it).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Seed of the generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The `sluice feed` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Feed {
    /// Listen on a port and send lines to the job that connects (instead of `nc -lk PORT`).
    Socket {
        /// The port to listen on.
        #[arg(long)]
        port: u16,
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Keep the connection open at the end of the input (until Ctrl-C).
        #[arg(long)]
        keep_open: bool,
        #[command(flatten)]
        input: Input,
    },
    /// Produce lines as records of a Kafka topic.
    Kafka {
        /// Bootstrap servers, `host:port[,host:port…]`.
        #[arg(
            long,
            env = "SLUICE_BROKERS",
            default_value = "127.0.0.1:9092",
            value_name = "LIST"
        )]
        brokers: String,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// Send every record to this partition (default: round-robin over the topic's
        /// partitions, so that each gets an equal share).
        #[arg(long)]
        partition: Option<i32>,
        #[command(flatten)]
        input: Input,
    },
}

/// Why a feed stopped early.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// A flag names something that is not there.
    #[error("{problem}; {fix}")]
    Config { problem: String, fix: String },
    /// The other side failed.
    #[error("{0}")]
    World(String),
}

impl FeedError {
    /// 2 for a configuration mistake, 1 for the world failing.
    pub fn exit_code(&self) -> u8 {
        match self {
            FeedError::Config { .. } => 2,
            FeedError::World(_) => 1,
        }
    }
}

/// A source of lines, paced to `--rate` and cut at `--count`.
struct Lines {
    read: Box<dyn FnMut() -> Option<std::io::Result<String>>>,
    rate: Option<u64>,
    count: Option<u64>,
    sent: u64,
    /// When the first line went (the pace is counted from it).
    started: Option<Instant>,
}

impl Lines {
    fn open(input: &Input) -> Result<Lines, FeedError> {
        let read: Box<dyn FnMut() -> Option<std::io::Result<String>>> =
            match (&input.generate, &input.file) {
                (Some(kind), _) => {
                    let mut g = Generator::new(*kind, input.seed);
                    Box::new(move || Some(Ok(g.next_record())))
                }
                (None, Some(path)) if path.as_os_str() != "-" => {
                    let file = std::fs::File::open(path).map_err(|e| FeedError::Config {
                        problem: format!("cannot open --file {}: {e}", path.display()),
                        fix: "name a readable file, or `-` for standard input".into(),
                    })?;
                    let mut lines = std::io::BufReader::new(file).lines();
                    Box::new(move || lines.next())
                }
                _ => {
                    let mut lines = std::io::stdin().lock().lines();
                    Box::new(move || lines.next())
                }
            };
        Ok(Lines {
            read,
            rate: input.rate,
            count: input.count,
            sent: 0,
            started: None,
        })
    }

    /// The next line, once its time has come (`before_waiting` runs first when it has not:
    /// a socket flushes the lines that were due); `None` at the end.
    ///
    /// Lines are never sent before their time. A line not yet due is waited for at least
    /// [`PACE_TICK`], so that the lines due by then go out together instead of one write per
    /// line (at 500 000 lines/s, a write and a TCP segment per line cost the job it fed a third
    /// of its CPU, in the kernel, and the feed six times what it costs now).
    fn next_line(
        &mut self,
        before_waiting: &mut dyn FnMut() -> Result<(), FeedError>,
    ) -> Result<Option<String>, FeedError> {
        if self.count.is_some_and(|c| self.sent >= c) {
            return Ok(None);
        }
        let line = match (self.read)() {
            None => return Ok(None),
            Some(Err(e)) => return Err(FeedError::World(format!("cannot read the input: {e}"))),
            Some(Ok(line)) => line,
        };
        if let Some(rate) = self.rate {
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = started + Duration::from_secs_f64(self.sent as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                before_waiting()?;
                std::thread::sleep(wait.max(PACE_TICK));
            }
        }
        self.sent += 1;
        Ok(Some(line))
    }
}

/// The shortest wait for a line that is not yet due (see [`Lines::next_line`]).
const PACE_TICK: Duration = Duration::from_millis(1);

/// Runs a `sluice feed` subcommand to its end.
pub fn run(feed: Feed) -> Result<(), FeedError> {
    match feed {
        Feed::Socket {
            port,
            host,
            keep_open,
            input,
        } => socket(&host, port, keep_open, Lines::open(&input)?),
        Feed::Kafka {
            brokers,
            topic,
            partition,
            input,
        } => kafka(&brokers, &topic, partition, Lines::open(&input)?),
    }
}

fn socket(host: &str, port: u16, keep_open: bool, mut lines: Lines) -> Result<(), FeedError> {
    let listener = TcpListener::bind((host, port)).map_err(|e| FeedError::Config {
        problem: format!("cannot listen on {host}:{port}: {e}"),
        fix: "choose a free port with --port (or stop what listens on it)".into(),
    })?;
    eprintln!("sluice feed: listening on {host}:{port}");
    let accept = |listener: &TcpListener| -> Result<std::io::BufWriter<TcpStream>, FeedError> {
        let (conn, peer) = listener
            .accept()
            .map_err(|e| FeedError::World(format!("accept on {host}:{port} failed: {e}")))?;
        eprintln!("sluice feed: {peer} connected");
        Ok(std::io::BufWriter::new(conn))
    };
    let mut conn = accept(&listener)?;
    // Lines written but maybe not yet flushed: a flush that fails loses them with the
    // connection, as `nc` loses what its buffers held.
    let mut flush_failed = false;
    loop {
        let mut flush = || {
            flush_failed |= conn.flush().is_err();
            Ok(())
        };
        let Some(line) = lines.next_line(&mut flush)? else {
            break;
        };
        let mut buf = line.into_bytes();
        buf.push(b'\n');
        // A connection that went away: the next one gets this line again.
        while std::mem::take(&mut flush_failed) || conn.write_all(&buf).is_err() {
            eprintln!("sluice feed: the connection closed; waiting for the next one");
            conn = accept(&listener)?;
        }
    }
    conn.flush()
        .map_err(|e| FeedError::World(format!("the connection failed at the end: {e}")))?;
    eprintln!("sluice feed: sent {} lines", lines.sent);
    if keep_open {
        // Until Ctrl-C: the receiver must not see the end of its stream.
        loop {
            std::thread::park();
        }
    }
    Ok(())
}

fn kafka(
    brokers: &str,
    topic: &str,
    partition: Option<i32>,
    mut lines: Lines,
) -> Result<(), FeedError> {
    use rdkafka::ClientContext;
    use rdkafka::producer::{
        BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer,
    };
    use std::sync::{Arc, Mutex};

    // Resolvable, answering, and the partition asked for exists: else one line, at once.
    let topics = super::kafka::reach(brokers)?;
    let partitions = topics.iter().find(|(t, _)| t == topic).map(|(_, n)| *n);
    if let (Some(p), Some(n)) = (partition, partitions) {
        if p < 0 || p as usize >= n {
            return Err(FeedError::Config {
                problem: format!(
                    "--partition {p}: the topic {topic} has {n} partitions (0…{})",
                    n - 1
                ),
                fix: format!(
                    "choose a partition below {n}, or create the topic with more: `sluice topic create {topic} --partitions {}`",
                    p + 1
                ),
            });
        }
    }

    /// Counts acknowledged records and keeps the first refusal.
    #[derive(Clone, Default)]
    struct Deliveries(Arc<Mutex<(u64, Option<String>)>>);
    impl ClientContext for Deliveries {
        // Reported once, by the feed, not as librdkafka's log lines.
        fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}
        fn error(&self, _: rdkafka::error::KafkaError, _: &str) {}
    }
    impl ProducerContext for Deliveries {
        type DeliveryOpaque = ();
        fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
            let mut d = self.0.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(_) => d.0 += 1,
                Err((e, _)) => {
                    d.1.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
    let deliveries = Deliveries::default();
    let producer: ThreadedProducer<Deliveries> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create_with_context(deliveries.clone())
        .map_err(|e| FeedError::Config {
            problem: format!("cannot make a Kafka producer for {brokers}: {e}"),
            fix: "give --brokers as host:port[,host:port…]".into(),
        })?;
    let failed = || deliveries.0.lock().ok().and_then(|d| d.1.clone());
    let mut sent: u64 = 0;
    while let Some(line) = lines.next_line(&mut || Ok(()))? {
        let mut record = BaseRecord::<(), String>::to(topic).payload(&line);
        match (partition, partitions) {
            (Some(p), _) => record = record.partition(p),
            // Round-robin (a topic the broker creates on first use: the producer's choice).
            (None, Some(n)) if n > 0 => record = record.partition((sent % n as u64) as i32),
            _ => {}
        }
        sent += 1;
        let mut record = Some(record);
        while let Some(r) = record.take() {
            match producer.send(r) {
                Ok(()) => {}
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    // The local queue is full: wait for deliveries, then again.
                    std::thread::sleep(Duration::from_millis(5));
                    record = Some(r);
                }
                Err((e, _)) => {
                    return Err(FeedError::World(format!("cannot send to {topic}: {e}")));
                }
            }
        }
        if let Some(e) = failed() {
            return Err(FeedError::World(format!("{topic} refused a record: {e}")));
        }
    }
    producer.flush(Duration::from_secs(60)).map_err(|e| {
        FeedError::World(format!("records to {topic} not acknowledged in 60 s: {e}"))
    })?;
    if let Some(e) = failed() {
        return Err(FeedError::World(format!("{topic} refused a record: {e}")));
    }
    let acked = deliveries.0.lock().map(|d| d.0).unwrap_or(0);
    eprintln!("sluice feed: sent {acked} records to {topic}");
    Ok(())
}
