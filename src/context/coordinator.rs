//! What the workers of one process agree on: which batches to cut, when to stop, how far the
//! job has got, and the first fatal error.
//!
//! Invariants:
//! - A batch `t` is cut by every local worker or by none: once a graceful stop fixes the final
//!   batch `f` (the latest batch any local worker has cut, or the latest batch whose time has
//!   come, whichever is later), every worker cuts every batch up to `f` without waiting for the
//!   clock, and none cuts a batch after `f`.
//! - `completed_through` only grows; it is the latest batch all local workers have finished.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::checkpoint::Checkpoint;
use crate::error::SluiceError;
use crate::listener::{
    BatchInfo, OutputOp, SnapshotWrite, SourceInput, StateSize, StreamingListener,
};
use crate::time::{Time, batch_at_or_after};

/// What a worker may do with the next batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CutDecision {
    /// Cut it now; `last` when no batch will follow it (a stop or `max_batches`).
    Cut {
        /// This is the final batch.
        last: bool,
    },
    /// Its time has not come.
    NotYet,
    /// The job is past its final batch: close the inputs.
    Finished,
}

#[derive(Default)]
struct CutState {
    max_cut: Option<u64>,
    final_batch: Option<u64>,
    /// A stop was requested: cut up to the final batch without waiting for the clock.
    hurry: bool,
}

/// One worker's view of a finished batch.
pub(crate) struct WorkerBatch {
    pub(crate) batch_ms: u64,
    pub(crate) inputs: Vec<SourceInput>,
    pub(crate) cut_at: Instant,
    pub(crate) started_at: Instant,
    pub(crate) done_at: Instant,
}

struct Progress {
    partial: BTreeMap<u64, (usize, WorkerBatch)>,
    state_sizes: BTreeMap<u64, Vec<StateSize>>,
    snapshot_writes: BTreeMap<u64, Vec<SnapshotWrite>>,
    /// Per batch, per output operation: its name, when the last local worker finished it, and
    /// how many local workers have.
    outputs_done: BTreeMap<u64, BTreeMap<usize, (String, Instant, usize)>>,
    completed_through: Option<u64>,
    completed_batches: u64,
    /// The latest batch a local worker cut (listeners hear of each batch once).
    started_through: Option<u64>,
    /// A job of several processes: this process's state of the batches it finished, to be
    /// sent to process 0 (see [`Coordinator::take_finished_state`]).
    finished_state: Vec<(u64, Vec<StateSize>)>,
}

pub(crate) struct Coordinator {
    pub(crate) batch_ms: u64,
    /// The job's default number of partitions.
    pub(crate) parallelism: usize,
    /// How shuffles place keys.
    pub(crate) partitioner: crate::dstream::spark_hash::Partitioner,
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
    cut: Mutex<CutState>,
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

mod generation;
mod reports;
mod restart;

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
            parallelism: config.parallelism(),
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
            cut: Mutex::new(CutState {
                max_cut: None,
                final_batch: None,
                hurry: false,
            }),
            abort: AtomicBool::new(false),
            stop_asked: AtomicBool::new(false),
            signal,
            signal_handled: AtomicBool::new(false),
            fatal: Mutex::new(None),
            progress: Mutex::new(Progress {
                partial: BTreeMap::new(),
                state_sizes: BTreeMap::new(),
                snapshot_writes: BTreeMap::new(),
                outputs_done: BTreeMap::new(),
                completed_through: None,
                completed_batches: 0,
                started_through: None,
                finished_state: Vec::new(),
            }),
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
                let last = base + n.saturating_sub(1) * self.batch_ms;
                let mut cut = lock(&self.cut);
                cut.final_batch = Some(cut.final_batch.map_or(last, |f| f.min(last)));
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
            c.on_schedule(t) || (!self.aborted() && lock(&self.cut).final_batch == Some(t))
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
            lock(&self.cut).hurry = true;
        }
        let mut state = lock(&self.cut);
        if state.final_batch.is_some_and(|f| t > f) {
            CutDecision::Finished
        } else if due || state.hurry {
            state.max_cut = Some(state.max_cut.map_or(t, |m| m.max(t)));
            CutDecision::Cut {
                last: state.final_batch == Some(t),
            }
        } else {
            CutDecision::NotYet
        }
    }

    /// Asks the job to stop: gracefully (every batch whose time has come, or that a worker has
    /// cut, is processed and its outputs run) or at once.
    pub(crate) fn request_stop(&self, graceful: bool) {
        self.stop_asked.store(true, Ordering::SeqCst);
        if !graceful {
            self.abort.store(true, Ordering::SeqCst);
        }
        let mut state = lock(&self.cut);
        let due = batch_at_or_after(self.now_ms(), self.batch_ms);
        let candidate = state.max_cut.map_or(due, |m| m.max(due));
        // Never before the first batch minus one interval: a stop before start cuts nothing.
        let candidate = candidate.max(self.first_batch().saturating_sub(self.batch_ms));
        // With a checkpoint, a graceful stop cuts one more batch, known to be the last when it
        // is cut, so stateful operators snapshot it (a batch already cut may have been
        // processed before the stop was asked).
        let candidate = match (&self.checkpoint, state.max_cut) {
            (Some(_), Some(m)) if graceful => candidate.max(m + self.batch_ms),
            _ => candidate,
        };
        state.final_batch = Some(state.final_batch.map_or(candidate, |f| {
            f.min(candidate).max(state.max_cut.unwrap_or(0))
        }));
        drop(state);
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

    /// A local worker finished batch `b.batch_ms`; when all have, listeners hear about it.
    pub(crate) fn report(&self, b: WorkerBatch) {
        let t = b.batch_ms;
        let mut p = lock(&self.progress);
        let entry = p.partial.entry(t).or_insert_with(|| {
            (
                0,
                WorkerBatch {
                    batch_ms: t,
                    inputs: Vec::new(),
                    cut_at: b.cut_at,
                    started_at: b.started_at,
                    done_at: b.done_at,
                },
            )
        });
        entry.0 += 1;
        let merged = &mut entry.1;
        merged.cut_at = merged.cut_at.min(b.cut_at);
        merged.started_at = merged.started_at.min(b.started_at);
        merged.done_at = merged.done_at.max(b.done_at);
        for input in b.inputs {
            match merged.inputs.iter_mut().find(|i| i.source == input.source) {
                Some(i) => i.merge(input),
                None => merged.inputs.push(input),
            }
        }
        let mut finished = Vec::new();
        while let Some(entry) = p.partial.first_entry() {
            if entry.get().0 < self.local_workers {
                break;
            }
            finished.push(entry.remove().1);
        }
        if let (Some(c), 0) = (&self.checkpoint, self.process) {
            // Process 0's probe passing a batch means every worker of every process finished it.
            let before = c.completed();
            for f in &finished {
                if before.is_none_or(|b| f.batch_ms > b) {
                    let due = self.snapshot_due(f.batch_ms);
                    c.batch_completed(f.batch_ms, self.peers, self.local_workers, due);
                }
            }
        }
        let mut states = Vec::with_capacity(finished.len());
        for f in &finished {
            p.completed_through = Some(f.batch_ms);
            p.completed_batches += 1;
            let snapshots = p.snapshot_writes.remove(&f.batch_ms).unwrap_or_default();
            let outputs = p
                .outputs_done
                .remove(&f.batch_ms)
                .unwrap_or_default()
                .into_iter()
                .map(|(id, (name, at, _))| OutputOp {
                    id,
                    name,
                    duration: at.saturating_duration_since(f.started_at),
                })
                .collect();
            states.push((
                p.state_sizes.remove(&f.batch_ms).unwrap_or_default(),
                snapshots,
                outputs,
            ));
        }
        if let Some(done) = p.completed_through {
            // Reports of operators no output depends on may come late: drop them.
            while p
                .state_sizes
                .first_key_value()
                .is_some_and(|(t, _)| *t <= done)
            {
                p.state_sizes.pop_first();
            }
            while p
                .snapshot_writes
                .first_key_value()
                .is_some_and(|(t, _)| *t <= done)
            {
                p.snapshot_writes.pop_first();
            }
            while p
                .outputs_done
                .first_key_value()
                .is_some_and(|(t, _)| *t <= done)
            {
                p.outputs_done.pop_first();
            }
        }
        drop(p);
        if !finished.is_empty() {
            self.progressed.notify_all();
        }
        let several = self.peers > self.local_workers;
        for (f, (state, snapshots, outputs)) in finished.into_iter().zip(states) {
            // Process 0 of several reports the whole job's state once every process sent it.
            let state = if several {
                lock(&self.progress)
                    .finished_state
                    .push((f.batch_ms, state.clone()));
                if self.process == 0 { Vec::new() } else { state }
            } else {
                state
            };
            let info = BatchInfo {
                batch_time: Time::from_millis(f.batch_ms),
                inputs: f.inputs,
                scheduling_delay: f.started_at.saturating_duration_since(f.cut_at),
                processing_time: f.done_at.saturating_duration_since(f.started_at),
                total_delay: f.done_at.saturating_duration_since(f.cut_at),
                state,
                snapshots,
                outputs,
            };
            for l in &self.listeners {
                l.on_batch_completed(&info);
            }
        }
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
