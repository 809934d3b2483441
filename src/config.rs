//! Job configuration: batch interval, workers and processes, clock and pacing.
//!
//! The worker flags are timely's own (`-w/--threads`, `-n/--processes`, `-p/--process`,
//! `-h/--hostfile`), parsed by [`ClusterArgs`] so that they can sit beside a job's own flags
//! (timely's getopts parser rejects unknown flags). The timely `Config` is built from them here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Result, SluiceError};
use crate::listener::StreamingListener;
use crate::time::whole_millis;

/// Timely's worker flags: `-w/--threads`, `-n/--processes`, `-p/--process`, `-h/--hostfile`.
///
/// A command line fills it (the `sluice` binary with clap, [`ClusterArgs::parse`] by hand);
/// [`ClusterArgs::to_cluster`] checks it.
///
/// # Examples
///
/// ```
/// let args = sluice::ClusterArgs::parse(["-w", "2"])?;
/// assert_eq!(args.threads, 2);
/// assert!(sluice::ClusterArgs::parse(["--bogus"]).is_err());
/// # Ok::<(), sluice::SluiceError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterArgs {
    /// Worker threads per process (timely's -w).
    pub threads: usize,
    /// Number of processes in the job (timely's -n).
    pub processes: usize,
    /// Index of this process, 0..processes (timely's -p).
    pub process: usize,
    /// File with one host:port per line, in process order (timely's -h); default localhost:2101+i.
    pub hostfile: Option<PathBuf>,
}

impl Default for ClusterArgs {
    fn default() -> Self {
        ClusterArgs {
            threads: 1,
            processes: 1,
            process: 0,
            hostfile: None,
        }
    }
}

const WORKER_FLAGS: &str =
    "use timely's flags: -w/--threads N, -n/--processes N, -p/--process I, -h/--hostfile FILE";

impl ClusterArgs {
    /// Parses timely's worker flags (`-w 2`, `--threads=2`, `-n 2 -p 0 -h hosts.txt`); any
    /// other argument is an error that names it.
    pub fn parse<I, S>(args: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed = ClusterArgs::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let arg = arg.as_ref();
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
                _ => (arg, None),
            };
            let mut value = || -> Result<String> {
                inline
                    .clone()
                    .or_else(|| args.next().map(|v| v.as_ref().to_owned()))
                    .ok_or_else(|| SluiceError::InvalidConfig {
                        problem: format!("{flag} needs a value"),
                        fix: WORKER_FLAGS.into(),
                    })
            };
            let number = |flag: &str, v: String| -> Result<usize> {
                v.parse().map_err(|_| SluiceError::InvalidConfig {
                    problem: format!("{flag} `{v}` is not a whole number"),
                    fix: WORKER_FLAGS.into(),
                })
            };
            match flag {
                "-w" | "--threads" => parsed.threads = number(flag, value()?)?,
                "-n" | "--processes" => parsed.processes = number(flag, value()?)?,
                "-p" | "--process" => parsed.process = number(flag, value()?)?,
                "-h" | "--hostfile" => parsed.hostfile = Some(PathBuf::from(value()?)),
                other => {
                    return Err(SluiceError::InvalidConfig {
                        problem: format!("`{other}` is not a worker flag"),
                        fix: WORKER_FLAGS.into(),
                    });
                }
            }
        }
        Ok(parsed)
    }

    /// Checks the flags and turns them into a [`Cluster`].
    ///
    /// # Examples
    ///
    /// ```
    /// let args = sluice::ClusterArgs { threads: 2, processes: 1, process: 0, hostfile: None };
    /// assert_eq!(args.to_cluster().unwrap().peers(), 2);
    /// let bad = sluice::ClusterArgs { threads: 1, processes: 2, process: 2, hostfile: None };
    /// assert!(bad.to_cluster().is_err());
    /// ```
    pub fn to_cluster(&self) -> Result<Cluster> {
        if self.threads == 0 {
            return Err(SluiceError::InvalidConfig {
                problem: "-w/--threads is 0".into(),
                fix: "give at least 1 worker thread per process".into(),
            });
        }
        if self.processes == 0 {
            return Err(SluiceError::InvalidConfig {
                problem: "-n/--processes is 0".into(),
                fix: "give at least 1 process".into(),
            });
        }
        if self.process >= self.processes {
            return Err(SluiceError::InvalidConfig {
                problem: format!(
                    "-p/--process is {} but there are only {} processes",
                    self.process, self.processes
                ),
                fix: format!("use a process index from 0 to {}", self.processes - 1),
            });
        }
        let addresses = if self.processes > 1 {
            match &self.hostfile {
                Some(path) => read_hostfile(path, self.processes)?,
                None => (0..self.processes)
                    .map(|i| format!("localhost:{}", 2101 + i))
                    .collect(),
            }
        } else {
            Vec::new()
        };
        Ok(Cluster {
            threads: self.threads,
            processes: self.processes,
            process: self.process,
            addresses,
        })
    }
}

fn read_hostfile(path: &PathBuf, processes: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| SluiceError::Hostfile {
        path: path.clone(),
        problem: e.to_string(),
        processes,
    })?;
    parse_hostfile(path, &text, processes)
}

/// The first `processes` address lines of a hostfile's text (`path` for errors): blank lines
/// and `#` comments are skipped; each address must be `host:port`.
pub(crate) fn parse_hostfile(path: &Path, text: &str, processes: usize) -> Result<Vec<String>> {
    let path = &path.to_path_buf();
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(processes)
        .map(str::to_owned)
        .collect();
    if lines.len() < processes {
        return Err(SluiceError::Hostfile {
            path: path.clone(),
            problem: format!("it has {} address lines", lines.len()),
            processes,
        });
    }
    if let Some(bad) = lines.iter().find(|l| {
        l.rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
    }) {
        return Err(SluiceError::Hostfile {
            path: path.clone(),
            problem: format!("`{bad}` is not host:port"),
            processes,
        });
    }
    Ok(lines)
}

/// Where the workers run: threads per process, processes, this process's index, addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Worker threads per process.
    pub threads: usize,
    /// Number of processes.
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// `host:port` of every process (empty for one process).
    pub addresses: Vec<String>,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            threads: 1,
            processes: 1,
            process: 0,
            addresses: Vec::new(),
        }
    }
}

impl Cluster {
    /// All workers of all processes.
    pub fn peers(&self) -> usize {
        self.threads * self.processes
    }

    /// Checks that this process can listen on its own address of the hostfile: another
    /// process on that port would otherwise be found only after timely's connection attempts,
    /// with an error that names neither the address nor the fix.
    pub(crate) fn check_own_address(&self) -> Result<()> {
        if self.processes <= 1 {
            return Ok(());
        }
        let Some(address) = self.addresses.get(self.process) else {
            return Ok(());
        };
        match std::net::TcpListener::bind(address.as_str()) {
            Ok(listener) => {
                drop(listener);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(SluiceError::InvalidConfig {
                problem: format!(
                    "process {} cannot listen on {address} (line {} of the hostfile): the address is in use",
                    self.process,
                    self.process + 1
                ),
                fix: "stop what listens there (an earlier run of this job?), or give this process another port in the hostfile".into(),
            }),
            Err(e) => Err(SluiceError::InvalidConfig {
                problem: format!(
                    "process {} cannot listen on {address} (line {} of the hostfile): {e}",
                    self.process,
                    self.process + 1
                ),
                fix: "give this process an address of this machine in the hostfile".into(),
            }),
        }
    }

    pub(crate) fn timely_config(&self) -> timely::Config {
        use timely::CommunicationConfig;
        let communication = if self.processes > 1 {
            CommunicationConfig::Cluster {
                threads: self.threads,
                process: self.process,
                addresses: self.addresses.clone(),
                report: false,
                zerocopy: false,
            }
        } else if self.threads > 1 {
            CommunicationConfig::Process(self.threads)
        } else {
            CommunicationConfig::Thread
        };
        let mut config = timely::Config {
            communication,
            worker: timely::WorkerConfig::default(),
        };
        differential_dataflow::configure(
            &mut config.worker,
            &differential_dataflow::Config::default().idle_merge_effort(Some(1000)),
        );
        config
    }
}

/// How batches are cut.
#[derive(Clone)]
pub enum Pacing {
    /// Batch `t` is cut when the clock reads `t` (Spark's behaviour).
    Clock(Arc<dyn Clock>),
    /// Batch times still advance by the interval, but the next batch is cut as soon as fewer than
    /// `max_in_flight` batches are unfinished: for tests and throughput benchmarks.
    AsFastAsPossible {
        /// Batches allowed in flight at once (at least 1).
        max_in_flight: usize,
    },
}

impl std::fmt::Debug for Pacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pacing::Clock(_) => write!(f, "Clock"),
            Pacing::AsFastAsPossible { max_in_flight } => {
                write!(f, "AsFastAsPossible({max_in_flight})")
            }
        }
    }
}

/// Everything a [`StreamingContext`](crate::StreamingContext) needs to run a job.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluice::{StreamingConfig, clock::ManualClock};
/// let config = StreamingConfig::new(Duration::from_secs(2))?
///     .threads(2)
///     .clock(ManualClock::new());
/// assert_eq!(config.batch_ms(), 2000);
/// # Ok::<(), sluice::SluiceError>(())
/// ```
#[derive(Clone)]
pub struct StreamingConfig {
    pub(crate) batch_ms: u64,
    pub(crate) cluster: Cluster,
    pub(crate) pacing: Pacing,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) max_batches: Option<u64>,
    pub(crate) first_batch_ms: Option<u64>,
    pub(crate) stop_on_signals: bool,
    pub(crate) listeners: Vec<Arc<dyn StreamingListener>>,
    pub(crate) checkpoint: Option<crate::checkpoint::CheckpointConfig>,
    pub(crate) default_parallelism: Option<usize>,
    pub(crate) app_name: Option<String>,
    pub(crate) connect_timeout: Duration,
    pub(crate) peer_timeout: Duration,
}

impl std::fmt::Debug for StreamingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamingConfig")
            .field("batch_ms", &self.batch_ms)
            .field("cluster", &self.cluster)
            .field("pacing", &self.pacing)
            .field("max_batches", &self.max_batches)
            .field("first_batch_ms", &self.first_batch_ms)
            .field("stop_on_signals", &self.stop_on_signals)
            .field("listeners", &self.listeners.len())
            .field("checkpoint", &self.checkpoint)
            .field("default_parallelism", &self.default_parallelism)
            .field("app_name", &self.app_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("peer_timeout", &self.peer_timeout)
            .finish()
    }
}

impl StreamingConfig {
    /// A one-process, one-worker configuration with the given batch interval (whole ms, ≥ 1 ms).
    pub fn new(batch_interval: Duration) -> Result<Self> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Ok(StreamingConfig {
            batch_ms: whole_millis(batch_interval)?,
            cluster: Cluster::default(),
            pacing: Pacing::Clock(Arc::clone(&clock)),
            clock,
            max_batches: None,
            first_batch_ms: None,
            stop_on_signals: false,
            listeners: Vec::new(),
            checkpoint: None,
            default_parallelism: None,
            app_name: None,
            connect_timeout: Duration::from_secs(60),
            peer_timeout: Duration::from_secs(30),
        })
    }

    /// How long the processes of a job wait for each other at start (default 60 s); then the
    /// missing ones are named.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a connection between two processes may go unanswered (a machine gone, a link
    /// down) before the job stops in every process with an error naming the process (default
    /// 30 s). A link down for less is ridden out by TCP: the batches wait and the output stays
    /// exact.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = sluice::StreamingConfig::new(Duration::from_secs(1))?.peer_timeout(Duration::from_secs(10));
    /// assert!(format!("{config:?}").contains("peer_timeout: 10s"));
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn peer_timeout(mut self, timeout: Duration) -> Self {
        self.peer_timeout = timeout.max(Duration::from_secs(1));
        self
    }

    /// The job's name (Spark's `setAppName`): kept in its checkpoint, so that another job
    /// pointed at that directory is refused by name instead of restoring state that is not
    /// its own. Empty means unnamed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = sluice::StreamingConfig::new(Duration::from_secs(1))?.app_name("word-totals");
    /// assert_eq!(c.name(), Some("word-totals"));
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.app_name = (!name.is_empty()).then_some(name);
        self
    }

    /// The job's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.app_name.as_deref()
    }

    /// The number of partitions a queue stream slices a batch into and a shuffle (the keyed
    /// operators, windows and state) makes unless given its own (Spark's
    /// `spark.default.parallelism`). By default the job's number of workers, as Spark's
    /// default is its number of cores. Partitions, not workers, decide the order a batch's
    /// records come out in: with this set, a job gives the same output in the same order on
    /// any number of workers and processes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = sluice::StreamingConfig::new(Duration::from_secs(1))?.threads(4).default_parallelism(2);
    /// assert_eq!(c.parallelism(), 2);
    /// assert_eq!(sluice::StreamingConfig::new(Duration::from_secs(1))?.threads(4).parallelism(), 4);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn default_parallelism(mut self, partitions: usize) -> Self {
        self.default_parallelism = Some(partitions.max(1));
        self
    }

    /// The default number of partitions in effect (see
    /// [`default_parallelism`](StreamingConfig::default_parallelism)).
    pub fn parallelism(&self) -> usize {
        self.default_parallelism
            .unwrap_or_else(|| self.cluster.peers())
            .max(1)
    }

    /// The batch interval in ms.
    pub fn batch_ms(&self) -> u64 {
        self.batch_ms
    }

    /// The workers this configuration asks for.
    pub fn cluster_ref(&self) -> &Cluster {
        &self.cluster
    }

    /// Worker threads in this (single) process.
    pub fn threads(mut self, threads: usize) -> Self {
        self.cluster.threads = threads.max(1);
        self
    }

    /// Workers and processes, as checked by [`ClusterArgs::to_cluster`].
    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = cluster;
        self
    }

    /// Workers and processes from timely's flags (`-w 2 -n 2 -p 0 -h hosts.txt`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = sluice::StreamingConfig::new(Duration::from_secs(1))?
    ///     .cluster_from_args(["-w", "2"])?;
    /// assert_eq!(c.cluster_ref().threads, 2);
    /// assert!(sluice::StreamingConfig::new(Duration::from_secs(1))?.cluster_from_args(["--bogus"]).is_err());
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn cluster_from_args<I, S>(self, args: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(self.cluster(ClusterArgs::parse(args)?.to_cluster()?))
    }

    /// Drives batches by `clock` (the system clock by default; a [`ManualClock`] in tests).
    ///
    /// [`ManualClock`]: crate::clock::ManualClock
    pub fn clock(mut self, clock: impl Clock) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(clock);
        self.pacing = Pacing::Clock(Arc::clone(&clock));
        self.clock = clock;
        self
    }

    /// Cuts batches as fast as the job finishes them (at most `max_in_flight` unfinished), with
    /// batch times still `first + k * interval`. For tests and throughput benchmarks.
    pub fn as_fast_as_possible(mut self, max_in_flight: usize) -> Self {
        self.pacing = Pacing::AsFastAsPossible {
            max_in_flight: max_in_flight.max(1),
        };
        self
    }

    /// Stops by itself after `n` batches (then behaves as a graceful stop). A job resumed from
    /// a checkpoint counts from the first batch whose outputs had not run.
    pub fn max_batches(mut self, n: u64) -> Self {
        self.max_batches = Some(n.max(1));
        self
    }

    /// The time of the first batch (must be a multiple of the interval); by default the first
    /// batch boundary after the clock's time at start.
    pub fn first_batch_ms(mut self, ms: u64) -> Self {
        self.first_batch_ms = Some(ms);
        self
    }

    /// Stop gracefully on Ctrl-C (SIGINT) and SIGTERM.
    pub fn stop_on_signals(mut self, yes: bool) -> Self {
        self.stop_on_signals = yes;
        self
    }

    /// Adds a listener for per-batch events.
    pub fn listener(mut self, listener: impl StreamingListener) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Keeps batch plans, the completed batch and state snapshots in `dir` (Spark's
    /// `ssc.checkpoint(dir)`), so that a restarted job resumes where this one stopped or
    /// crashed: see [`checkpoint`](crate::checkpoint) for what is kept and how it recovers.
    pub fn checkpoint(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        let interval_ms = self.checkpoint.as_ref().and_then(|c| c.interval_ms);
        let incremental = self.checkpoint.as_ref().is_none_or(|c| c.incremental);
        self.checkpoint = Some(crate::checkpoint::CheckpointConfig {
            dir: dir.into(),
            interval_ms,
            incremental,
        });
        self
    }

    /// Whether state snapshots are incremental (the default): a stateful operator logs each
    /// batch's changes as it makes them, a snapshot batch hands the log over (nothing of the
    /// state is encoded on its path), and a background thread keeps each snapshot a delta on
    /// the last full one, compacting into a new full one off the batch's path; a restore reads
    /// at most two parts per worker. `false` encodes every key at every snapshot, on the
    /// snapshot batch's path. Takes effect with [`checkpoint`](StreamingConfig::checkpoint).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = sluice::StreamingConfig::new(Duration::from_secs(1))?
    ///     .checkpoint("/tmp/sluice-chk")
    ///     .incremental_snapshots(false);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn incremental_snapshots(mut self, yes: bool) -> Self {
        match self.checkpoint.as_mut() {
            Some(c) => c.incremental = yes,
            None => {
                self.checkpoint = Some(crate::checkpoint::CheckpointConfig {
                    dir: std::path::PathBuf::new(),
                    interval_ms: None,
                    incremental: yes,
                })
            }
        }
        self
    }

    /// Snapshots state every `every` (a multiple of the batch interval; by default 10 batch
    /// intervals, as Spark). Takes effect with [`checkpoint`](StreamingConfig::checkpoint).
    pub fn checkpoint_interval(mut self, every: Duration) -> Self {
        let ms = every.as_millis() as u64;
        match self.checkpoint.as_mut() {
            Some(c) => c.interval_ms = Some(ms),
            None => {
                self.checkpoint = Some(crate::checkpoint::CheckpointConfig {
                    dir: std::path::PathBuf::new(),
                    interval_ms: Some(ms),
                    incremental: true,
                })
            }
        }
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(c) = &self.checkpoint
            && c.dir.as_os_str().is_empty()
        {
            return Err(SluiceError::InvalidConfig {
                problem:
                    "a checkpoint interval or snapshot kind is set but no checkpoint directory"
                        .into(),
                fix: "add `.checkpoint(dir)` (`--checkpoint DIR` on the command line)".into(),
            });
        }
        if let Some(first) = self.first_batch_ms
            && !first.is_multiple_of(self.batch_ms)
        {
            return Err(SluiceError::InvalidConfig {
                problem: format!(
                    "the first batch time {first} ms is not a multiple of the batch interval {} ms",
                    self.batch_ms
                ),
                fix: "give a multiple of the batch interval".into(),
            });
        }
        if self.cluster.process >= self.cluster.processes || self.cluster.threads == 0 {
            return Err(SluiceError::InvalidConfig {
                problem: format!("{:?} is not a valid cluster", self.cluster),
                fix: "build it with ClusterArgs::to_cluster".into(),
            });
        }
        Ok(())
    }
}
