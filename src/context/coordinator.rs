//! What the workers of one process agree on: which batches to cut, when to stop, how far the
//! job has got, and the first fatal error.
//!
//! The coordinator is the shared, locked wiring around two halves of plain data, each with
//! its invariants stated and unit-tested in its own file:
//! - **control** ([`cuts`]): which batch may be cut, and the final batch a stop or
//!   `max_batches` fixes. A batch is cut by every local worker or by none; after a stop every
//!   batch up to the final one is cut without waiting for the clock, none after it.
//! - **progress** ([`progress`], told to the listeners by [`reports`]): what the workers
//!   report of each batch, merged until all local workers have finished it. Batches finish in
//!   order; `completed_through` only grows.
//!
//! Around them: the clock and the first batch of the run ([`restart`]), batch generation
//! ([`generation`]), the checkpoint's schedule and the job's first fatal error (here).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::checkpoint::Checkpoint;
use crate::error::SluiceError;
use crate::listener::{StateSize, StreamingListener};
use crate::time::{Time, batch_at_or_after};

pub(crate) struct Coordinator {
    pub(crate) batch_ms: u64,
    /// The job's default number of partitions.
    pub(crate) parallelism: usize,
    /// How shuffles place keys.
    pub(crate) partitioner: crate::spark_hash::Partitioner,
    /// The first batch this run would start at without a checkpoint.
    proposed_first: u64,
    /// The first batch of this run, decided once the dataflow is built.
    start: std::sync::OnceLock<std::result::Result<u64, String>>,
    /// The job's first batch ever (window slides are aligned to it).
    pub(crate) zero: u64,
    max_batches: Option<u64>,
    process: usize,
    peers: usize,
    checkpoint: Option<Arc<Checkpoint>>,
    local_workers: usize,
    clock: Arc<dyn crate::clock::Clock>,
    /// Added to the clock: set at start when the clock reads earlier than the checkpoint's
    /// last batch (it went back), so that batch times go on from the checkpoint's.
    clock_offset: std::sync::atomic::AtomicU64,
    cut: Mutex<Cuts>,
    abort: AtomicBool,
    /// A stop was asked (gracefully or not).
    stop_asked: AtomicBool,
    signal: Arc<AtomicBool>,
    /// The signal was seen and a graceful stop begun.
    signal_handled: AtomicBool,
    fatal: Mutex<Option<SluiceError>>,
    progress: Mutex<Progress>,
    progressed: Condvar,
    built: Mutex<usize>,
    listeners: Vec<Arc<dyn StreamingListener>>,
    /// Generates each batch at its time (see `generator`).
    pub(crate) generator: super::generator::Generator,
    /// The driver thread has ended the job.
    ended: AtomicBool,
}

mod cuts;
mod generation;
mod progress;
mod reports;
mod restart;

pub(crate) use cuts::CutDecision;
use cuts::{Cuts, Stop};
use progress::Progress;
pub(crate) use progress::WorkerBatch;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking worker poisons nothing we cannot still read: the data are plain counters.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Coordinator {
    pub(crate) fn new(
        config: &crate::config::StreamingConfig,
        signal: Arc<AtomicBool>,
    ) -> Result<Self, SluiceError> {
        let batch_ms = config.batch_ms;
        let proposed_first = config
            .first_batch_ms
            .unwrap_or_else(|| crate::time::next_batch_after(config.clock.now_ms(), batch_ms));
        let checkpoint = match &config.checkpoint {
            Some(c) => Some(Checkpoint::open(
                c,
                batch_ms,
                proposed_first,
                config.app_name.as_deref(),
                config.cluster.process,
            )?),
            None => None,
        };
        let zero = checkpoint.as_ref().map_or(proposed_first, |c| c.zero);
        Ok(Coordinator {
            batch_ms,
            parallelism: config.get_default_parallelism(),
            partitioner: config.partitioner,
            proposed_first,
            start: std::sync::OnceLock::new(),
            zero,
            max_batches: config.max_batches,
            process: config.cluster.process,
            peers: config.cluster.threads * config.cluster.processes,
            checkpoint,
            local_workers: config.cluster.threads,
            clock: Arc::clone(&config.clock),
            clock_offset: std::sync::atomic::AtomicU64::new(0),
            cut: Mutex::new(Cuts::default()),
            abort: AtomicBool::new(false),
            stop_asked: AtomicBool::new(false),
            signal,
            signal_handled: AtomicBool::new(false),
            fatal: Mutex::new(None),
            progress: Mutex::new(Progress::default()),
            progressed: Condvar::new(),
            built: Mutex::new(0),
            listeners: config.listeners.clone(),
            generator: Default::default(),
            ended: AtomicBool::new(false),
        })
    }

    /// Decides the first batch of this run (once; every worker calls it after building): the
    /// batch after the restored snapshot when a checkpoint is resumed, else the configured one.
    pub(crate) fn decide_start(&self) -> Result<u64, SluiceError> {
        let decided = self.start.get_or_init(|| {
            let first = match &self.checkpoint {
                Some(c) => c.first_batch().map_err(|e| e.to_string())?,
                None => self.proposed_first,
            };
            self.behind_the_checkpoint(first);
            if let Some(n) = self.max_batches {
                // Batches replayed only to rebuild state do not count.
                let base = self
                    .silent_through()
                    .map_or(first, |c| (c + self.batch_ms).max(first));
                lock(&self.cut).limit(base + n.saturating_sub(1) * self.batch_ms);
            }
            Ok(first)
        });
        decided.clone().map_err(SluiceError::Lifecycle)
    }

    /// The job's clock: the configured clock, put forward if it read earlier than the
    /// checkpoint at start.
    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms() + self.clock_offset.load(Ordering::Relaxed)
    }

    /// The first batch of this run (the proposed one until it is decided).
    pub(crate) fn first_batch(&self) -> u64 {
        match self.start.get() {
            Some(Ok(t)) => *t,
            _ => self.proposed_first,
        }
    }

    /// The job's checkpoint, if it has one.
    pub(crate) fn checkpoint(&self) -> Option<&Arc<Checkpoint>> {
        self.checkpoint.as_ref()
    }

    /// Outputs are off up to this batch: it finished every output before a restart.
    pub(crate) fn silent_through(&self) -> Option<u64> {
        self.checkpoint
            .as_ref()
            .filter(|c| c.resuming)
            .and_then(|c| c.completed())
    }

    /// Whether stateful operators snapshot their state after batch `t`: at the end of every
    /// checkpoint interval, and after the final batch of a graceful stop.
    pub(crate) fn snapshot_due(&self, t: u64) -> bool {
        self.checkpoint.as_ref().is_some_and(|c| {
            c.on_schedule(t) || (!self.aborted() && lock(&self.cut).final_batch() == Some(t))
        })
    }

    /// Waits for the checkpoint's background writes (at the end of a graceful stop).
    pub(crate) fn flush_checkpoint(&self) {
        if let Some(c) = &self.checkpoint {
            c.flush();
        }
    }

    /// The job has ended: its hold on the checkpoint is released (another job of this process
    /// or another process may take it now).
    pub(crate) fn release_checkpoint(&self) {
        self.ended.store(true, Ordering::SeqCst);
        if let Some(c) = &self.checkpoint {
            c.release();
        }
    }

    /// Decides about batch `t`; `due` says whether its time has come by the pacing rule.
    pub(crate) fn try_cut(&self, t: u64, due: bool) -> CutDecision {
        // The flag stays set once handled: a second signal then ends the process at once
        // (`register_signals`), which a restart from the checkpoint treats as a crash.
        if self.signal.load(Ordering::SeqCst) && !self.signal_handled.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "stop signal: stopping gracefully without waiting for the batch timer: the batches in progress and what was received so far are processed, then the job exits; a second signal stops it at once (unfinished batches are replayed on restart from the checkpoint)"
            );
            self.request_stop(true);
            lock(&self.cut).hurry();
        }
        lock(&self.cut).decide(t, due)
    }

    /// Asks the job to stop: gracefully (every batch whose time has come, or that a worker has
    /// cut, is processed and its outputs run) or at once.
    pub(crate) fn request_stop(&self, graceful: bool) {
        self.stop_asked.store(true, Ordering::SeqCst);
        if !graceful {
            self.abort.store(true, Ordering::SeqCst);
        }
        let stop = Stop {
            due: batch_at_or_after(self.now_ms(), self.batch_ms),
            first: self.first_batch(),
            batch_ms: self.batch_ms,
            graceful,
            checkpointed: self.checkpoint.is_some(),
        };
        lock(&self.cut).stop(stop);
        self.progressed.notify_all();
    }

    /// A local worker has built its dataflow (or failed to).
    pub(crate) fn built(&self) {
        *lock(&self.built) += 1;
        self.progressed.notify_all();
    }

    /// Waits until every local worker has built its dataflow, the job failed, or `timeout`.
    pub(crate) fn wait_built(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut built = lock(&self.built);
        while *built < self.local_workers && !self.aborted() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            built = self
                .progressed
                .wait_timeout(built, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    pub(crate) fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// A stop was asked (a signal, even one the driver has not handled yet; `stop`; a
    /// failure): loops waiting for a server give up waiting. Reaching `max_batches` is not one.
    pub(crate) fn stopping(&self) -> bool {
        self.stop_asked.load(Ordering::SeqCst) || self.signal.load(Ordering::SeqCst)
    }

    /// Records a fatal error (the first one wins) and stops the job at once.
    pub(crate) fn fail(&self, error: SluiceError) {
        // Reported once, by whoever awaits the job; logged here only for -vv.
        tracing::debug!("job failing: {error}");
        if let SluiceError::OutputFailed {
            output, batch_ms, ..
        } = &error
        {
            for l in &self.listeners {
                l.on_batch_failed(Time::from_millis(*batch_ms), output, &error.to_string());
            }
        }
        let mut fatal = lock(&self.fatal);
        if fatal.is_none() {
            *fatal = Some(error);
        }
        drop(fatal);
        self.request_stop(false);
    }

    /// Fails the job with `error` as the cause of whatever failed before it (a lost
    /// connection, which makes the workers fail too).
    pub(crate) fn fail_with_cause(&self, error: SluiceError) {
        tracing::debug!("job failing: {error}");
        *lock(&self.fatal) = Some(error);
        self.request_stop(false);
    }

    pub(crate) fn take_error(&self) -> Option<SluiceError> {
        lock(&self.fatal).take()
    }

    /// This process's state of the batches it finished since the last call (sent to process 0
    /// by its first worker with the next batch it starts).
    pub(crate) fn take_finished_state(&self) -> Vec<(u64, Vec<StateSize>)> {
        std::mem::take(&mut lock(&self.progress).finished_state)
    }

    /// Process 0: every process's state of batch `t`, summed; listeners hear of it.
    pub(crate) fn report_job_state(&self, t: u64, state: &[StateSize]) {
        for l in &self.listeners {
            l.on_batch_state(Time::from_millis(t), state);
        }
    }

    /// A local worker cut batch `t`; the first to do so tells the listeners.
    pub(crate) fn batch_started(&self, t: u64) {
        let first = {
            let mut p = lock(&self.progress);
            let first = p.started_through.is_none_or(|s| t > s);
            if first {
                p.started_through = Some(t);
            }
            first
        };
        if first {
            for l in &self.listeners {
                l.on_batch_started(Time::from_millis(t));
            }
        }
    }

    pub(crate) fn completed_batches(&self) -> u64 {
        lock(&self.progress).completed_batches
    }

    pub(crate) fn completed_through(&self) -> Option<u64> {
        lock(&self.progress).completed_through
    }

    /// Waits until batch `t` has completed here, or `timeout` passes; true if it completed.
    pub(crate) fn wait_for_batch(&self, t: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut p = lock(&self.progress);
        loop {
            if p.completed_through.is_some_and(|c| c >= t) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || self.aborted() {
                return false;
            }
            p = self
                .progressed
                .wait_timeout(p, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// What the operators' [`Runtime`](crate::runtime::Runtime) handle asks of the coordinator.
impl crate::runtime::Control for Coordinator {
    fn batch_ms(&self) -> u64 {
        self.batch_ms
    }

    fn zero(&self) -> u64 {
        self.zero
    }

    fn fail(&self, error: SluiceError) {
        Coordinator::fail(self, error);
    }

    fn aborted(&self) -> bool {
        Coordinator::aborted(self)
    }

    fn stopping(&self) -> bool {
        Coordinator::stopping(self)
    }

    fn snapshot_due(&self, t: u64) -> bool {
        Coordinator::snapshot_due(self, t)
    }

    fn report_output(&self, t: u64, id: usize, name: &str, at: Instant) {
        Coordinator::report_output(self, t, id, name, at);
    }

    fn report_snapshot(&self, t: u64, write: crate::listener::SnapshotWrite) {
        Coordinator::report_snapshot(self, t, write);
    }

    fn report_state(&self, t: u64, size: StateSize) {
        Coordinator::report_state(self, t, size);
    }

    fn silent_through(&self) -> Option<u64> {
        Coordinator::silent_through(self)
    }

    fn checkpoint(&self) -> Option<&Arc<Checkpoint>> {
        Coordinator::checkpoint(self)
    }
}
