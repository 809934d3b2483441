//! Job configuration: batch interval, workers and processes ([`ClusterArgs`], [`Cluster`]), clock
//! and pacing, checkpoints.

mod cluster;

pub(crate) use cluster::parse_hostfile;
pub use cluster::{Cluster, ClusterArgs};

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Result, SluiceError};
use crate::listener::StreamingListener;
use crate::time::whole_millis;

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
    pub(crate) partitioner: crate::spark_hash::Partitioner,
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
            .field("partitioner", &self.partitioner)
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
            partitioner: Default::default(),
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
    /// assert_eq!(c.get_app_name(), Some("word-totals"));
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.app_name = (!name.is_empty()).then_some(name);
        self
    }

    /// The job's name, if it has one (set with [`app_name`](StreamingConfig::app_name)).
    ///
    /// Getters are named after their setter with `get_`, as `std::process::Command`'s are.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = sluice::StreamingConfig::new(Duration::from_secs(1))?;
    /// assert_eq!(c.get_app_name(), None);
    /// assert_eq!(c.app_name("totals").get_app_name(), Some("totals"));
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn get_app_name(&self) -> Option<&str> {
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
    /// assert_eq!(c.get_default_parallelism(), 2);
    /// assert_eq!(sluice::StreamingConfig::new(Duration::from_secs(1))?.threads(4).get_default_parallelism(), 4);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn default_parallelism(mut self, partitions: usize) -> Self {
        self.default_parallelism = Some(partitions.max(1));
        self
    }

    /// How shuffles place keys in partitions: sluice's own hash (the default), or Spark's
    /// `HashPartitioner` with the JVM's `hashCode` for strings, `i32`, `i64` and tuples of
    /// them, so that after a shuffle every partition holds exactly the records Spark's would
    /// (what `glom`, `mapPartitions` and the part files of `save_as_text_files` show). See
    /// [`spark_hash`](crate::spark_hash).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluice::spark_hash::Partitioner;
    /// let c = sluice::StreamingConfig::new(Duration::from_secs(1))?.partitioner(Partitioner::Spark);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn partitioner(mut self, partitioner: crate::spark_hash::Partitioner) -> Self {
        self.partitioner = partitioner;
        self
    }

    /// The default number of partitions in effect (see
    /// [`default_parallelism`](StreamingConfig::default_parallelism)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = sluice::StreamingConfig::new(Duration::from_secs(1))?.threads(3);
    /// assert_eq!(c.get_default_parallelism(), 3); // the workers, until set
    /// assert_eq!(c.default_parallelism(8).get_default_parallelism(), 8);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn get_default_parallelism(&self) -> usize {
        self.default_parallelism
            .unwrap_or_else(|| self.cluster.peers())
            .max(1)
    }

    /// The batch interval in ms.
    pub fn batch_ms(&self) -> u64 {
        self.batch_ms
    }

    /// The workers this configuration asks for (set with [`cluster`](StreamingConfig::cluster),
    /// [`threads`](StreamingConfig::threads) or
    /// [`cluster_from_args`](StreamingConfig::cluster_from_args)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let c = sluice::StreamingConfig::new(Duration::from_secs(1))?.threads(2);
    /// assert_eq!((c.get_cluster().threads, c.get_cluster().processes), (2, 1));
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn get_cluster(&self) -> &Cluster {
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
    /// assert_eq!(c.get_cluster().threads, 2);
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
        let accept_source_change = self
            .checkpoint
            .as_ref()
            .is_some_and(|c| c.accept_source_change);
        self.checkpoint = Some(crate::checkpoint::CheckpointConfig {
            dir: dir.into(),
            interval_ms,
            incremental,
            accept_source_change,
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
                    accept_source_change: false,
                })
            }
        }
        self
    }

    /// On a restart whose sources are not the checkpoint's (a socket on another port, other
    /// Kafka topics, another directory, a source removed), drop the input the old sources
    /// planned that no snapshot has counted yet, and say how much, instead of refusing to
    /// start (the default). A source that is the same under another name (`localhost` for
    /// `127.0.0.1`) is not a change. Takes effect with [`checkpoint`](StreamingConfig::checkpoint).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = sluice::StreamingConfig::new(Duration::from_secs(1))?
    ///     .checkpoint("/tmp/sluice-chk")
    ///     .accept_source_change(true);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn accept_source_change(mut self, yes: bool) -> Self {
        match self.checkpoint.as_mut() {
            Some(c) => c.accept_source_change = yes,
            None if yes => {
                self.checkpoint = Some(crate::checkpoint::CheckpointConfig {
                    dir: std::path::PathBuf::new(),
                    interval_ms: None,
                    incremental: true,
                    accept_source_change: yes,
                })
            }
            None => {}
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
                    accept_source_change: false,
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
