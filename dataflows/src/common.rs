//! Flags every dataflow shares, and how they become a [`StreamingConfig`].

use std::path::PathBuf;

use std::time::Duration;

use sluice::listener::LogListener;
use sluice::source::{DeadLetters, GeneratorConfig, SocketOptions};
use sluice::{ClusterArgs, CompactString, DStream, Job, Result, StreamingConfig};

/// Clap's parser for durations (`2s`, `500ms`): the library's message, fix included.
pub(crate) fn duration(text: &str) -> std::result::Result<Duration, String> {
    sluice::time::parse_duration(text).map_err(|e| e.to_string())
}

/// [`byte_size`], at least 1 byte.
pub fn positive_byte_size(text: &str) -> std::result::Result<u64, String> {
    match byte_size(text)? {
        0 => Err(format!("`{text}` is 0 bytes: give at least 1")),
        n => Ok(n),
    }
}

/// Clap's parser for byte sizes: `1048576`, `64KiB`/`64k`, `128MiB`/`128m`, `1GiB`/`1g`
/// (binary units whatever the spelling, as Spark's `128m`).
pub fn byte_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => {
            return Err(format!(
                "`{text}` is not a size: write bytes or a number with KiB, MiB or GiB, e.g. 128MiB"
            ));
        }
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!("`{text}` is not a size: write bytes or a number with KiB, MiB or GiB, e.g. 128MiB")
    })?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// `--receiver-buffer`: `auto` (the bound follows the job) or a fixed size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiverBuffer {
    /// Twice what the job processes per batch interval, from 128 MiB up
    /// ([`BufferBound::FollowJob`](sluice::source::BufferBound)).
    Auto,
    /// This many bytes, whatever the job does.
    Fixed(u64),
}

/// Clap's parser for `--receiver-buffer`: `auto` or a [`byte_size`].
pub fn receiver_buffer(text: &str) -> std::result::Result<ReceiverBuffer, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        return Ok(ReceiverBuffer::Auto);
    }
    byte_size(text)
        .map(ReceiverBuffer::Fixed)
        .map_err(|e| format!("{e}, or `auto`"))
}

/// The bounds of a receiver (socket or Kafka receiver), shared by the dataflows that have one.
#[derive(Clone, Debug, clap::Args)]
pub struct ReceiverArgs {
    /// The most memory received lines may hold until a batch takes them: `auto` (twice what
    /// the job processes in one batch interval, from 128MiB up to an eighth of the machine's
    /// memory) or a fixed size. When full, the receiver stops reading and TCP holds the sender
    /// back (nothing is lost; the batch metrics show how long).
    #[arg(long, default_value = "auto", value_name = "auto|SIZE", value_parser = receiver_buffer)]
    pub receiver_buffer: ReceiverBuffer,
    /// At most this many lines (records) per second (Spark's spark.streaming.receiver.maxRate).
    #[arg(long, value_name = "LINES", value_parser = clap::value_parser!(u64).range(1..))]
    pub receiver_max_rate: Option<u64>,
}

impl ReceiverArgs {
    /// These bounds on `options`.
    pub fn apply(&self, options: SocketOptions) -> Result<SocketOptions> {
        let options = match self.receiver_buffer {
            ReceiverBuffer::Auto => options,
            ReceiverBuffer::Fixed(bytes) if bytes < 64 << 10 => {
                return Err(sluice::SluiceError::InvalidConfig {
                    problem: format!(
                        "--receiver-buffer {bytes} is below the smallest buffer, 64KiB"
                    ),
                    fix: "give at least 64KiB, or `auto` (the default)".into(),
                });
            }
            ReceiverBuffer::Fixed(bytes) => options.max_buffered_bytes(bytes as usize),
        };
        Ok(match self.receiver_max_rate {
            Some(rate) => options.max_rate(rate),
            None => options,
        })
    }
}

/// Timely's worker flags, as clap parses them beside a dataflow's own.
///
/// Clap's own `-h` is taken by `--hostfile`, as in timely; `--help` still works.
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerFlags {
    /// Worker threads per process (timely's -w).
    #[arg(short = 'w', long = "threads", default_value_t = 1, value_name = "NUM",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: u64,
    /// Number of processes in the job (timely's -n).
    #[arg(short = 'n', long = "processes", default_value_t = 1, value_name = "NUM",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub processes: u64,
    /// Index of this process, 0..processes (timely's -p).
    #[arg(short = 'p', long = "process", default_value_t = 0, value_name = "IDX")]
    pub process: usize,
    /// File with one host:port per line, in process order (timely's -h); needs -n.
    #[arg(
        short = 'h',
        long = "hostfile",
        value_name = "FILE",
        requires = "processes"
    )]
    pub hostfile: Option<PathBuf>,
    /// With -n: how long the processes wait for each other at start before naming the
    /// missing ones.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = duration)]
    pub connect_timeout: Duration,
    /// With -n: how long a connection between processes may go unanswered (a machine gone, a
    /// link down) before the job stops in every process; a shorter outage is ridden out.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = duration)]
    pub peer_timeout: Duration,
}

impl WorkerFlags {
    /// The library's form of these flags.
    pub fn to_args(&self) -> ClusterArgs {
        ClusterArgs {
            threads: self.threads as usize,
            processes: self.processes as usize,
            process: self.process,
            hostfile: self.hostfile.clone(),
        }
    }
}

/// Flags of every dataflow.
#[derive(Clone, Debug, clap::Args)]
pub struct CommonArgs {
    /// Batch interval: a whole number of milliseconds, e.g. 2s, 500ms, 1m.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = duration,
          allow_hyphen_values = true)]
    pub batch: Duration,
    /// Records shown per batch by the printed output.
    #[arg(long = "print", default_value_t = 10, value_name = "N")]
    pub print: usize,
    /// Stop by itself after this many batches (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_batches: Option<u64>,
    /// Keep batch plans and state snapshots in this directory and resume from it on restart
    /// (Spark's `ssc.checkpoint(dir)` with `getOrCreate`).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Snapshot state this often (a multiple of --batch; default 10 batches).
    #[arg(long, value_name = "DURATION", requires = "checkpoint", value_parser = duration,
          allow_hyphen_values = true)]
    pub checkpoint_interval: Option<Duration>,
    /// Encode every key at every snapshot, instead of the keys changed since the previous one
    /// (incremental snapshots, compacted in the background, are the default).
    #[arg(long, requires = "checkpoint")]
    pub full_snapshots: bool,
    /// Restart although a source is not the checkpoint's (another port, other topics, another
    /// directory), dropping the input the old one planned that no snapshot has counted yet
    /// (the log says how much). Without it such a restart is refused.
    #[arg(long, requires = "checkpoint")]
    pub accept_source_change: bool,
    /// Partitions of queue and generated input and of every shuffle (Spark's
    /// `spark.default.parallelism`; default: the number of workers). Set it and the output
    /// comes in the same order on any number of workers.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub default_parallelism: Option<u64>,
    /// How shuffles place keys: `sluice` (its own hash, the default) or `spark` (Spark's
    /// `HashPartitioner` with the JVM's `hashCode` of strings, integers and tuples, so that
    /// partitions after a shuffle hold exactly Spark's records).
    #[arg(long, value_enum, default_value_t = PartitionerArg::Sluice, value_name = "HASH")]
    pub partitioner: PartitionerArg,
    /// More log output on stderr: -v for info, -vv for one line per batch.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The web UI (live page, REST API, Prometheus `/metrics`) on `host:port` (in use: exit 2);
    /// `off` for none [default: 127.0.0.1:4040, Spark's port, or the next free one of the 16
    /// after it].
    #[arg(long, value_name = "ADDR|off")]
    pub ui: Option<String>,
    /// Keep the event log (every batch's info, for `sluice history`) in this directory
    /// [default: the checkpoint's `events/` with a local --checkpoint, else none].
    #[arg(long, value_name = "DIR")]
    pub event_log: Option<PathBuf>,
    /// Completed batches the web UI keeps (Spark's `spark.streaming.ui.retainedBatches`).
    #[arg(long, default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ui_retained_batches: u64,
    #[command(flatten)]
    pub cluster: WorkerFlags,
    /// Print help (-h is --hostfile, as in timely).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// The dataflow's name (set by the command line, not a flag): the job's identity.
    #[arg(skip)]
    pub app: String,
}

/// `--partitioner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PartitionerArg {
    /// sluice's own hash.
    Sluice,
    /// Spark's `HashPartitioner` with the JVM's `hashCode`.
    Spark,
}

impl CommonArgs {
    /// The job configuration these flags describe.
    pub fn config(&self) -> Result<StreamingConfig> {
        let mut config = StreamingConfig::new(self.batch)?
            .app_name(&self.app)
            .cluster(self.cluster.to_args().to_cluster()?)
            .connect_timeout(self.cluster.connect_timeout)
            .peer_timeout(self.cluster.peer_timeout)
            .stop_on_signals(true)
            .listener(LogListener);
        if let Some(n) = self.max_batches {
            config = config.max_batches(n);
        }
        if let Some(dir) = &self.checkpoint {
            crate::paths::checkpoint_dir(dir)?;
            config = config.checkpoint(dir);
        }
        if let Some(every) = self.checkpoint_interval {
            config = config.checkpoint_interval(every);
        }
        if self.full_snapshots {
            config = config.incremental_snapshots(false);
        }
        if self.accept_source_change {
            config = config.accept_source_change(true);
        }
        if let Some(n) = self.default_parallelism {
            config = config.default_parallelism(n as usize);
        }
        config = config.partitioner(match self.partitioner {
            PartitionerArg::Sluice => sluice::spark_hash::Partitioner::Sluice,
            PartitionerArg::Spark => sluice::spark_hash::Partitioner::Spark,
        });
        self.web_ui(config)
    }

    /// Starts the web UI the flags ask for and adds its listeners to `config`. The default
    /// address is best effort (a job still runs when 4040 and the 16 ports after it are taken,
    /// with a warning); an address given with `--ui` must work.
    fn web_ui(&self, config: StreamingConfig) -> Result<StreamingConfig> {
        use std::sync::Arc;
        let job = self.job_description();
        let config = match self.event_log_dir() {
            Some(dir) => config.listener(sluice::webui::EventLog::create(&dir, &job)?),
            None => config,
        };
        let addr = match self.ui.as_deref() {
            Some("off") => return Ok(config),
            Some(addr) => addr,
            None => "127.0.0.1:4040",
        };
        let status = Arc::new(sluice::webui::Status::new(
            job,
            self.ui_retained_batches as usize,
        ));
        let metrics = Arc::new(sluice::metrics::Metrics::new(self.batch));
        // Spark's 4040 moves on to the next free port; an address the user gave must work.
        let started = if self.ui.is_some() {
            sluice::webui::WebUi::start(addr, status.clone(), metrics.clone())
        } else {
            sluice::webui::WebUi::start_near(addr, status.clone(), metrics.clone())
        };
        match started {
            Ok(ui) => {
                eprintln!("sluice: web UI at http://{}/", ui.local_addr());
                Ok(config.listener(status).listener(metrics))
            }
            Err(e) if self.ui.is_none() => {
                tracing::warn!("no web UI: {e}");
                Ok(config)
            }
            Err(e) => Err(e),
        }
    }

    /// Where the event log goes: `--event-log`, or a local checkpoint's `events/`.
    fn event_log_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.event_log {
            return Some(dir.clone());
        }
        let chk = self.checkpoint.as_ref()?;
        (!chk.to_string_lossy().contains("://")).then(|| chk.join("events"))
    }

    /// The job as the web UI and the event log describe it.
    fn job_description(&self) -> sluice::webui::JobDescription {
        sluice::webui::JobDescription {
            name: self.app.clone(),
            batch_ms: self.batch.as_millis() as u64,
            workers: self.cluster.threads as usize,
            processes: self.cluster.processes as usize,
            process: self.cluster.process,
            settings: vec![
                (
                    "command line".into(),
                    sluice::redact::redact(&std::env::args().collect::<Vec<_>>().join(" "))
                        .into_owned(),
                ),
                (
                    "checkpoint".into(),
                    self.checkpoint
                        .as_ref()
                        .map(|d| d.display().to_string())
                        .unwrap_or_else(|| "none".into()),
                ),
            ],
        }
    }
}

/// Where text lines come from: a TCP server (`--host`) or the built-in generator.
#[derive(Clone, Debug, clap::Args)]
pub struct LineSourceArgs {
    /// Read lines from this TCP server (e.g. one started with `nc -lk 9999`); without it the
    /// dataflow runs on generated input so that you see output at once.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Port of the TCP server (with --host).
    #[arg(long, default_value_t = 9999, requires = "host")]
    pub port: u16,
    /// Longest accepted line (bytes, or with KiB/MiB/GiB as --receiver-buffer); longer lines
    /// are set aside as malformed.
    #[arg(long, default_value = "1MiB", value_name = "SIZE", value_parser = positive_byte_size)]
    pub max_line_bytes: u64,
    /// Append malformed input (not UTF-8, too long) to this file, one tab-separated line each.
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// Do not keep the receiver's write-ahead log even with --checkpoint (lines received but not
    /// yet in a finished batch are then lost in a crash, as in Spark's default).
    #[arg(long, requires = "host")]
    pub no_wal: bool,
    /// Lines received within this interval form one block, one partition of the batch
    /// (Spark's `spark.streaming.blockInterval`): batch / block interval = partitions.
    #[arg(long, default_value = "200ms", value_name = "DURATION", value_parser = duration,
          requires = "host", allow_hyphen_values = true)]
    pub block_interval: Duration,
    #[command(flatten)]
    pub receiver: ReceiverArgs,
    /// Adapt the receiver's rate to what the job processes (Spark's
    /// spark.streaming.backpressure.enabled; PID estimator with Spark's defaults), within
    /// --receiver-max-rate.
    #[arg(long, requires = "host")]
    pub backpressure: bool,
    /// With --backpressure: lines/s until the first batch has finished (Spark's
    /// spark.streaming.backpressure.initialRate).
    #[arg(long, value_name = "N", requires = "backpressure",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub initial_rate: Option<u64>,
    /// Generated input: words per second over the whole job (without --host).
    #[arg(long, default_value_t = 20, value_name = "WORDS")]
    pub rate: u64,
    /// Generated input: distinct words (without --host).
    #[arg(long, default_value_t = 20, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub vocabulary: u64,
    /// Generated input: words per line (without --host); 10, as the benchmarks and the
    /// Spark comparison use.
    #[arg(long, default_value_t = 10, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub words_per_line: u64,
}

impl LineSourceArgs {
    /// Socket options from the flags.
    pub fn socket_options(&self) -> Result<SocketOptions> {
        let dead_letters = match &self.dead_letter {
            Some(path) => {
                crate::paths::dead_letter_file(path)?;
                DeadLetters::to_file(path)?
            }
            None => DeadLetters::counting(),
        };
        let options = SocketOptions {
            max_line_bytes: self.max_line_bytes as usize,
            dead_letters,
            block_interval: self.block_interval,
            write_ahead_log: if self.no_wal {
                sluice::source::WriteAheadLog::Off
            } else {
                sluice::source::WriteAheadLog::WhenCheckpointed
            },
            ..SocketOptions::default()
        };
        let options = self.receiver.apply(options)?;
        Ok(if self.backpressure {
            options.backpressure(self.initial_rate, Default::default())
        } else {
            options
        })
    }

    /// Generator settings from the flags.
    pub fn generator(&self) -> GeneratorConfig {
        GeneratorConfig {
            rate_per_sec: self.rate,
            vocabulary: self.vocabulary as usize,
            words_per_line: self.words_per_line as usize,
            ..GeneratorConfig::default()
        }
    }

    /// The source these flags choose; tells the user on stderr when it is the generator.
    pub fn source(&self) -> Result<LineSource> {
        // Opened whatever the source, so that a dead-letter path that cannot be used is
        // refused at start rather than ignored.
        let options = self.socket_options()?;
        Ok(match &self.host {
            Some(host) => LineSource::Socket {
                host: host.clone(),
                port: self.port,
                options,
            },
            None => {
                let generator = self.generator();
                eprintln!(
                    "sluice: no --host given: reading {} generated words/s (use --host 127.0.0.1 --port 9999 with `nc -lk 9999` for your own input)",
                    generator.rate_per_sec
                );
                LineSource::Generator(generator)
            }
        })
    }
}

/// Where a dataflow's text lines come from.
#[derive(Clone, Debug)]
pub enum LineSource {
    /// A TCP server (Spark's `socketTextStream`).
    Socket {
        host: String,
        port: u16,
        options: SocketOptions,
    },
    /// Generated words.
    Generator(GeneratorConfig),
}

impl LineSource {
    /// The lines, on this worker's job.
    pub fn lines<'s>(&self, job: &mut Job<'s>) -> DStream<'s, String> {
        match self {
            LineSource::Socket {
                host,
                port,
                options,
            } => job.socket_text_stream_with(host, *port, options.clone()),
            LineSource::Generator(g) => job.generator(g.clone()),
        }
    }

    /// `(word, 1)` for every word of every line: `flatMap(_.split("\\s+")).map((_, 1))`
    /// (see [`word_pairs`]).
    pub fn word_ones<'s>(&self, job: &mut Job<'s>) -> DStream<'s, (CompactString, u64)> {
        self.lines(job).flat_map(word_pairs)
    }
}

/// Where a partition without a stored offset starts (`auto.offset.reset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OffsetReset {
    /// The oldest record Kafka still has.
    Earliest,
    /// Only records written after the job started.
    Latest,
    /// Fail, naming the partition.
    None,
}

impl OffsetReset {
    /// librdkafka's word for it.
    fn as_param(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
            OffsetReset::None => "none",
        }
    }
}

/// Flags of the Kafka dataflows.
#[derive(Clone, Debug, clap::Args)]
pub struct KafkaArgs {
    /// Kafka brokers, host:port[,host:port…].
    #[arg(
        long,
        env = "SLUICE_BROKERS",
        default_value = "127.0.0.1:9092",
        value_name = "LIST"
    )]
    pub brokers: String,
    /// Topics to read, comma-separated.
    #[arg(long, required = true, value_delimiter = ',', value_name = "LIST")]
    pub topics: Vec<String>,
    /// Consumer group.
    #[arg(long, default_value = "sluice", value_name = "NAME")]
    pub group: String,
    /// Where to start a partition without a stored offset.
    #[arg(long, value_enum, default_value_t = OffsetReset::Latest)]
    pub offset_reset: OffsetReset,
    /// Any librdkafka consumer setting, KEY=VALUE (repeatable), e.g. security.protocol=SSL.
    #[arg(long = "kafka-param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Adapt the records read per batch to what the job processes (Spark's
    /// spark.streaming.backpressure.enabled; PID estimator with Spark's defaults).
    #[arg(long)]
    pub backpressure: bool,
    /// With --backpressure: records/s of the first batch, before there is a rate to go by
    /// (Spark's spark.streaming.backpressure.initialRate).
    #[arg(long, value_name = "N", requires = "backpressure",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub initial_rate: Option<u64>,
}

impl KafkaArgs {
    /// The direct stream's configuration (Subscribe to `--topics`).
    pub fn config(&self) -> Result<sluice::source::kafka::KafkaConfig> {
        use sluice::source::kafka::{ConsumerStrategy, KafkaConfig};
        // A broker name that resolves nowhere is a mistake to name now, not retried forever.
        sluice::source::kafka::config::check_brokers(&self.brokers)?;
        let mut config = KafkaConfig::new(
            self.brokers.clone(),
            self.group.clone(),
            ConsumerStrategy::Subscribe(self.topics.clone()),
        )
        .param("auto.offset.reset", self.offset_reset.as_param());
        for p in &self.params {
            let Some((k, v)) = p.split_once('=') else {
                return Err(sluice::SluiceError::InvalidConfig {
                    problem: format!("--kafka-param `{p}` has no `=`"),
                    fix: "write it as KEY=VALUE, e.g. --kafka-param security.protocol=SSL".into(),
                });
            };
            config = config.param(k, v);
        }
        if self.backpressure {
            config = config.backpressure(self.initial_rate, Default::default());
        }
        Ok(config)
    }
}

/// `(word, 1)` for every word of `text`, split as `str::split_whitespace` does (Spark's
/// `split("\\s+")` without empty words), with nothing allocated for a word of up to 24 bytes
/// (kept inline, see [`sluice::text::words`]); `flat_map` moves the pairs straight into its
/// output.
pub fn word_pairs<S: AsRef<str>>(text: S) -> impl Iterator<Item = (CompactString, u64)> {
    sluice::text::words(text).map(|word| (word, 1))
}

/// A record's bytes as text: moved when they are UTF-8 (no copy), else with `U+FFFD` for what
/// is not (as `String::from_utf8_lossy`).
pub fn text_of(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|not_utf8| String::from_utf8_lossy(not_utf8.as_bytes()).into_owned())
}

/// The course's running total per word (`updateStateByKey((seq, old) => Some(seq.sum +
/// old.getOrElse(0)))`), declared pure and named `word-totals` (the name its checkpointed state
/// is kept under).
pub fn word_totals<'s>(
    words: &DStream<'s, (CompactString, u64)>,
) -> sluice::dstream::stateful::Stateful<'s, (CompactString, u64)> {
    words.update_state_by_key_with(
        sluice::dstream::state::UpdateState::new(|new: Vec<u64>, old: Option<u64>| {
            Some(new.iter().sum::<u64>() + old.unwrap_or(0))
        })
        .pure()
        .name("word-totals"),
    )
}
