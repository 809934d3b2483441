//! [`StreamingContext`]: configure, start, stop and wait for a job (Spark's `StreamingContext`).
//!
//! Spark defines DStreams on the driver, then `start`s. In sluice the DStreams are defined by a
//! build function that every worker runs (timely's model), given to [`StreamingContext::start`];
//! the returned [`StreamingHandle`] has Spark's lifecycle: `stop(graceful)`,
//! `await_termination`, `await_termination_or_timeout`.
//!
//! Stopping gracefully (also on Ctrl-C/SIGTERM with
//! [`stop_on_signals`](crate::StreamingConfig::stop_on_signals)) processes every batch whose
//! time has come or that a worker has already cut, runs its outputs, and ends; data a receiver
//! has buffered goes into that last batch. Stopping at once drops batches in flight.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

pub(crate) mod coordinator;
pub(crate) mod driver;
pub(crate) mod generator;
pub mod job;
mod network;

use coordinator::Coordinator;
use driver::{BuildFn, run_worker};
pub use job::Job;

use crate::config::StreamingConfig;
use crate::error::{Result, SluiceError};
use crate::time::Time;

/// The entry point of a streaming job.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluice::{StreamingConfig, StreamingContext, clock::ManualClock, source::BatchQueue};
///
/// let clock = ManualClock::new();
/// let queue = BatchQueue::from_batches(vec![vec![1u64, 2, 3]]);
/// let config = StreamingConfig::new(Duration::from_secs(1))?.clock(clock.clone());
/// let q = queue.clone();
/// let mut running = StreamingContext::new(config).start(move |job| {
///     job.queue_stream(&q).count().print(10);
/// })?;
/// clock.advance(Duration::from_secs(2));      // batches 1000 ms and 2000 ms are due
/// assert!(running.await_batch(sluice::Time::from_millis(2000), Duration::from_secs(10)));
/// running.stop(true);
/// running.await_termination()?;
/// # Ok::<(), sluice::SluiceError>(())
/// ```
pub struct StreamingContext {
    config: StreamingConfig,
}

impl StreamingContext {
    /// A context for `config`.
    pub fn new(config: StreamingConfig) -> Self {
        StreamingContext { config }
    }

    /// The configuration.
    pub fn config(&self) -> &StreamingConfig {
        &self.config
    }

    /// Starts the job: every worker runs `build` to define its DStreams, then batches are cut.
    /// Returns at once; the workers run in threads of their own.
    pub fn start<F>(self, build: F) -> Result<StreamingHandle>
    where
        F: for<'a, 's> Fn(&'a mut Job<'s>) + Send + Sync + 'static,
    {
        let config = self.config;
        config.validate()?;
        let signal = Arc::new(AtomicBool::new(false));
        if config.stop_on_signals {
            register_signals(&signal)?;
        }
        config.cluster.check_own_address()?;
        let coord = Arc::new(Coordinator::new(&config, signal)?);
        let build: Arc<BuildFn> = Arc::new(build);
        let timely_config = config.cluster.timely_config();
        let cluster = config.cluster.clone();
        let peer_timeout = config.peer_timeout;
        // Several processes: sluice connects them (handshake, timeouts) and hands the sockets
        // to timely.
        let sockets = if cluster.processes > 1 {
            network::install_panic_hook();
            let job = config.app_name.clone().unwrap_or_default();
            Some(network::connect(
                &cluster,
                &job,
                config.connect_timeout,
                peer_timeout,
            )?)
        } else {
            None
        };
        let threads = config.cluster.threads;
        let pacing = config.pacing.clone();
        let worker_coord = Arc::clone(&coord);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let thread_coord = Arc::clone(&coord);
        std::thread::Builder::new()
            .name("sluice-driver".into())
            .spawn(move || {
                let work = move |worker: &mut timely::worker::Worker| {
                    let coord = Arc::clone(&worker_coord);
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run_worker(worker, Arc::clone(&coord), pacing.clone(), threads, &*build)
                    }));
                    match outcome {
                        Ok(r) => r,
                        Err(panic) => {
                            let msg = panic_message(&panic);
                            coord.fail(SluiceError::WorkerFailed(format!(
                                "worker {} panicked: {msg}",
                                worker.index()
                            )));
                            for id in worker.installed_dataflows() {
                                worker.drop_dataflow(id);
                            }
                            Err(msg)
                        }
                    }
                };
                let guards = match sockets {
                    Some(sockets) => {
                        network::execute(sockets, &cluster, timely_config.worker, work)
                    }
                    None => timely::execute(timely_config, work),
                };
                let result = match guards {
                    Err(e) => Err(SluiceError::Startup(e)),
                    Ok(guards) => {
                        // Joining ends timely's communication threads, which panic when a
                        // connection failed.
                        let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            guards.join()
                        }));
                        let mut result = Ok(());
                        match joined {
                            Err(panic) => {
                                result = Err(SluiceError::WorkerFailed(panic_message(&panic)))
                            }
                            Ok(results) => {
                                for r in results {
                                    match r {
                                        Ok(Ok(())) => {}
                                        Ok(Err(e)) | Err(e) => {
                                            if result.is_ok() {
                                                result = Err(SluiceError::WorkerFailed(e));
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        result
                    }
                };
                // A failed connection is the cause of whatever else failed.
                if let Some((remote, cause)) = network::failure().filter(|_| cluster.processes > 1)
                {
                    thread_coord.fail_with_cause(network::lost(
                        &cluster,
                        remote,
                        &cause,
                        peer_timeout,
                    ));
                }
                if !thread_coord.aborted() {
                    // The final snapshot's manifest and the completed marker are on disk.
                    thread_coord.flush_checkpoint();
                }
                thread_coord.release_checkpoint();
                let result = match thread_coord.take_error() {
                    Some(e) => Err(e),
                    None => result,
                };
                let _ = done_tx.send(result);
            })
            .map_err(|e| SluiceError::Startup(format!("cannot start the driver thread: {e}")))?;
        // Errors found while building (no outputs, a bad window) come back from `start` itself.
        coord.wait_built(Duration::from_secs(30));
        let mut handle = StreamingHandle {
            coord,
            done: done_rx,
            finished: false,
        };
        if handle.coord.aborted() {
            handle.await_termination()?;
        }
        Ok(handle)
    }

    /// Spark's `StreamingContext.getOrCreate(dir, create)`: a context whose job checkpoints to
    /// `dir` and, when `dir` holds a checkpoint, resumes from it. The dataflow is always built
    /// from code (`create` makes the configuration, the build function the DStreams), so a job
    /// whose code changed keeps the state of every operator whose name did not change.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluice::{StreamingConfig, StreamingContext, source::BatchQueue};
    /// let dir = tempfile::tempdir().unwrap();
    /// let ssc = StreamingContext::get_or_create(dir.path(), || {
    ///     Ok(StreamingConfig::new(Duration::from_secs(1))?.as_fast_as_possible(1).max_batches(2))
    /// })?;
    /// let queue = BatchQueue::from_batches(vec![vec![("a".to_owned(), 1u64)]]);
    /// ssc.run(move |job| {
    ///     job.queue_stream(&queue)
    ///         .update_state_by_key_with(sluice::dstream::state::UpdateState::new(
    ///             |new: Vec<u64>, old: Option<u64>| Some(old.unwrap_or(0) + new.iter().sum::<u64>()),
    ///         ).name("totals"))
    ///         .print(10);
    /// })?;
    /// assert!(dir.path().join("metadata").exists());
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn get_or_create(
        dir: impl Into<std::path::PathBuf>,
        create: impl FnOnce() -> Result<StreamingConfig>,
    ) -> Result<StreamingContext> {
        Ok(StreamingContext::new(create()?.checkpoint(dir)))
    }

    /// Starts the job and waits until it ends (for jobs that stop by themselves, such as those
    /// with [`max_batches`](StreamingConfig::max_batches), or that stop on a signal).
    pub fn run<F>(self, build: F) -> Result<()>
    where
        F: for<'a, 's> Fn(&'a mut Job<'s>) + Send + Sync + 'static,
    {
        self.start(build)?.await_termination()
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

fn register_signals(flag: &Arc<AtomicBool>) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    for sig in [SIGINT, SIGTERM] {
        // A second signal while the first is being handled (the flag is still set) ends the
        // process at once, exit code 130, as a crash that the checkpoint recovers from.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(flag))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(flag)))
            .map_err(|e| SluiceError::Startup(format!("cannot install the signal handler: {e}")))?;
    }
    Ok(())
}

/// A running job.
pub struct StreamingHandle {
    coord: Arc<Coordinator>,
    done: Receiver<Result<()>>,
    finished: bool,
}

impl StreamingHandle {
    /// Stops the job: `graceful` processes every batch whose time has come (and what receivers
    /// have buffered) and runs its outputs first; otherwise batches in flight are dropped.
    pub fn stop(&self, graceful: bool) {
        self.coord.request_stop(graceful);
    }

    /// Waits until the job ends; the job's error, if it failed. Later calls return `Ok`.
    pub fn await_termination(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.done.recv().unwrap_or_else(|_| {
            Err(SluiceError::WorkerFailed(
                "the driver thread ended without a result".into(),
            ))
        })
    }

    /// Waits at most `timeout`; `Ok(true)` if the job ended (successfully) in that time.
    pub fn await_termination_or_timeout(&mut self, timeout: Duration) -> Result<bool> {
        if self.finished {
            return Ok(true);
        }
        match self.done.recv_timeout(timeout) {
            Ok(result) => {
                self.finished = true;
                result.map(|()| true)
            }
            Err(RecvTimeoutError::Timeout) => Ok(false),
            Err(RecvTimeoutError::Disconnected) => {
                self.finished = true;
                Err(SluiceError::WorkerFailed(
                    "the driver thread ended without a result".into(),
                ))
            }
        }
    }

    /// Waits until batch `t` has finished in this process (or `timeout` passes).
    pub fn await_batch(&self, t: Time, timeout: Duration) -> bool {
        self.coord.wait_for_batch(t.millis(), timeout)
    }

    /// Batches finished in this process so far.
    pub fn completed_batches(&self) -> u64 {
        self.coord.completed_batches()
    }

    /// The latest batch finished in this process.
    pub fn last_completed_batch(&self) -> Option<Time> {
        self.coord.completed_through().map(Time::from_millis)
    }

    /// The time of the first batch.
    pub fn first_batch(&self) -> Time {
        Time::from_millis(self.coord.first_batch())
    }
}

impl Drop for StreamingHandle {
    fn drop(&mut self) {
        if !self.finished {
            self.coord.request_stop(false);
        }
    }
}
