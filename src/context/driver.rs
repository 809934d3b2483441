//! The loop every worker runs: build the dataflow, cut batches, step timely, report progress.
//!
//! Cutting batch `t` means: ask every source for its records of `t`, send them at time `t`,
//! send the batch tick `t`, and advance every input to `t + interval`. A batch is finished on
//! this worker when the job's probe (behind every output) has passed `t`.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::{InputHandleVec, ProbeHandle};
use timely::worker::Worker;

use super::coordinator::{Coordinator, CutDecision, WorkerBatch};
use super::job::Job;
use crate::config::Pacing;
use crate::dstream::{JobCtx, WorkerInfo};
use crate::error::SluiceError;
use crate::listener::SourceInput;
use crate::source::{BatchSlot, CompletedBatch, Feeder};
use crate::time::Time;

pub(crate) type BuildFn = dyn for<'a, 's> Fn(&'a mut Job<'s>) + Send + Sync;

/// Records sent into the dataflow between two steps of the worker while a batch enters.
const FEED_CHUNK: usize = 16 * 1024;

struct InFlight {
    t: u64,
    inputs: Vec<SourceInput>,
    cut_at: Instant,
}

pub(crate) fn run_worker(
    worker: &mut Worker,
    coord: Arc<Coordinator>,
    pacing: Pacing,
    threads: usize,
    build: &BuildFn,
) -> Result<(), String> {
    let info = WorkerInfo {
        index: worker.index(),
        peers: worker.peers(),
        threads,
        process: worker.index() / threads.max(1),
        batch_ms: coord.batch_ms,
        parallelism: coord.parallelism,
        partitioner: coord.partitioner,
    };
    let probe = ProbeHandle::new();
    let mut ticks: InputHandleVec<u64, u64> = InputHandleVec::new();
    // A job of several processes: every worker's input of a batch goes to worker 0 too, so
    // that process 0's listeners (its web UI) see the whole job's input.
    let several_processes = info.peers > threads.max(1);
    let mut job_inputs: InputHandleVec<u64, (u64, Gathered)> = InputHandleVec::new();
    let gathered: Rc<std::cell::RefCell<JobInputs>> = Rc::default();
    // Process 0 of several reports the whole job's input.
    let whole_job = (several_processes && info.process == 0).then_some(&*gathered);
    let ctx = Rc::new(JobCtx {
        probe: probe.clone(),
        outputs: std::cell::Cell::new(0),
        info,
        runtime: crate::runtime::Runtime::new(Arc::clone(&coord) as _, info),
        operator_count: std::cell::Cell::new(0),
        build_error: std::cell::RefCell::new(None),
        state_names: Default::default(),
    });
    let mut feeders: Vec<Box<dyn Feeder>> = worker.dataflow::<u64, _, _>(|scope| {
        let mut job = Job {
            scope,
            ticks: ticks.to_stream(scope),
            ctx: Rc::clone(&ctx),
            feeders: Vec::new(),
        };
        build(&mut job);
        if several_processes {
            gather(
                job_inputs.to_stream(scope),
                Rc::clone(&gathered),
                Arc::clone(&coord),
                info.peers / threads.max(1),
                &probe,
            );
        }
        job.feeders
    });
    let build_error = ctx.build_error.borrow_mut().take();
    if let Some(e) = build_error {
        coord.fail(e);
        coord.built();
        return Ok(());
    }
    if ctx.outputs.get() == 0 {
        coord.fail(SluiceError::NoOutputOperations);
        coord.built();
        return Ok(());
    }
    let first = match coord.decide_start() {
        Ok(t) => t,
        Err(e) => {
            coord.fail(e);
            coord.built();
            return Ok(());
        }
    };
    let keys = source_keys(&feeders);
    let checkpoint = coord.checkpoint().cloned();
    let mut plan_log = None;
    if let Some(c) = &checkpoint {
        // Sources that are not the checkpoint's would replay its plans as nothing: refused
        // (or, accepted, their plans are dropped) before any source recovers.
        let legacy = legacy_keys(&feeders);
        let current: Vec<crate::checkpoint::sources::CurrentSource<'_>> = feeders
            .iter()
            .zip(&keys)
            .zip(&legacy)
            .map(
                |((f, key), legacy_key)| crate::checkpoint::sources::CurrentSource {
                    key: key.clone(),
                    identity: f.identity(),
                    name: f.name(),
                    legacy_key: legacy_key.clone(),
                    count: Box::new(move |p: &[u8]| f.planned_records(p)),
                },
            )
            .collect();
        let dropped = match c.check_sources(&current, info.index == 0) {
            Ok(d) => d,
            Err(e) => {
                coord.fail(e);
                coord.built();
                return Ok(());
            }
        };
        drop(current);
        if c.resuming {
            for (f, key) in feeders.iter_mut().zip(&keys) {
                let mut recovery = c.source_recovery(key);
                if dropped.contains(key) {
                    recovery.plans.clear();
                }
                // A source that cannot resume exactly refuses: the job does not start.
                let resumed = c
                    .check_replay_from_start(key, &f.name())
                    .and_then(|()| f.recover(recovery));
                if let Err(e) = resumed {
                    coord.fail(e);
                    coord.built();
                    return Ok(());
                }
            }
        }
        match c.plan_log(first, info.index) {
            Ok(log) => plan_log = Some((first, log)),
            Err(e) => {
                coord.fail(e);
                coord.built();
                return Ok(());
            }
        }
    }
    // Sources that fix their input at batch time hand the job generator their hooks (after
    // they recovered: a recovered batch is not sampled again).
    for (f, key) in feeders.iter_mut().zip(&keys) {
        coord.generator.register(key.clone(), f.at_batch_time());
    }
    coord.built();
    if let Pacing::Clock(_) = &pacing {
        Coordinator::start_generator(&coord, first);
    }

    let interval = coord.batch_ms;
    for f in feeders.iter_mut() {
        f.advance_to(first);
    }
    ticks.advance_to(first);
    job_inputs.advance_to(first);

    let mut next = first;
    let mut index = 0u64;
    let mut finishing = Finishing {
        probe: probe.clone(),
        in_flight: VecDeque::new(),
        last_done: Instant::now(),
        whole_job,
    };
    loop {
        if coord.aborted() {
            break;
        }
        let due = match &pacing {
            Pacing::Clock(_) => coord.now_ms() >= next,
            Pacing::AsFastAsPossible { max_in_flight } => {
                finishing.in_flight.len() < *max_in_flight
            }
        };
        match coord.try_cut(next, due) {
            CutDecision::Cut { last } => {
                let slot = BatchSlot {
                    time: Time::from_millis(next),
                    interval_ms: interval,
                    index,
                    worker: info.index,
                    peers: info.peers,
                    last,
                };
                // Delays count from when the batch was due (its time on the job's clock): a
                // batch cut late — catching up after a restart, or behind a slow one — shows
                // how late it is, as Spark's delays count from the batch time.
                let late = match &pacing {
                    Pacing::Clock(_) => Duration::from_millis(coord.now_ms().saturating_sub(next)),
                    Pacing::AsFastAsPossible { .. } => Duration::ZERO,
                };
                let now = Instant::now();
                let cut_at = now.checked_sub(late).unwrap_or(now);
                let inputs: Vec<SourceInput> = feeders.iter_mut().map(|f| f.read(&slot)).collect();
                if several_processes {
                    job_inputs.send((next, Gathered::Inputs(inputs.clone())));
                    // The first worker of each process sends the state of what it finished.
                    if info.index.is_multiple_of(threads.max(1)) {
                        for (t, state) in coord.take_finished_state() {
                            job_inputs.send((next, Gathered::State(t, state)));
                        }
                    }
                }
                if let Some(e) = feeders.iter_mut().find_map(|f| f.failure()) {
                    coord.fail(e);
                }
                if let (Some(c), Some(log)) = (&checkpoint, plan_log.as_mut()) {
                    // The batch's plan is durable before the batch runs (ARCHITECTURE.md §4).
                    if let Err(e) = record_plans(c, log, &mut feeders, &keys, &slot) {
                        coord.fail(e);
                    }
                }
                ticks.send(next);
                ticks.flush();
                // A batch still running finishes while this one enters: it is reported
                // between chunks, when it finishes, not after this batch has entered (which
                // counted this batch's intake in its processing time and held back what its
                // sources commit).
                for i in 0..feeders.len() {
                    while feeders[i].send_chunk(FEED_CHUNK) {
                        worker.step();
                        finishing.report(&coord, &mut feeders);
                    }
                }
                for f in feeders.iter_mut() {
                    f.advance_to(next + interval);
                }
                ticks.advance_to(next + interval);
                job_inputs.advance_to(next + interval);
                finishing.in_flight.push_back(InFlight {
                    t: next,
                    inputs,
                    cut_at,
                });
                coord.batch_started(next);
                next += interval;
                index += 1;
                worker.step();
            }
            CutDecision::NotYet => {
                let wait = match &pacing {
                    Pacing::Clock(clock) => {
                        let until = Duration::from_millis(next.saturating_sub(coord.now_ms()));
                        until.clamp(clock.poll_interval(), Duration::from_millis(20))
                    }
                    Pacing::AsFastAsPossible { .. } => Duration::from_millis(1),
                };
                worker.step_or_park(Some(wait));
            }
            CutDecision::Finished => break,
        }
        finishing.report(&coord, &mut feeders);
    }

    for f in feeders.iter_mut() {
        f.close();
    }
    drop(ticks);
    drop(job_inputs);
    if coord.aborted() {
        for id in worker.installed_dataflows() {
            worker.drop_dataflow(id);
        }
        return Ok(());
    }
    while !probe.done() {
        worker.step_or_park(Some(Duration::from_millis(5)));
        finishing.report(&coord, &mut feeders);
        if coord.aborted() {
            for id in worker.installed_dataflows() {
                worker.drop_dataflow(id);
            }
            return Ok(());
        }
    }
    finishing.report(&coord, &mut feeders);
    Ok(())
}

/// Worker 0's gathered input of every worker, per batch: sources in order, counts summed.
type JobInputs = std::collections::BTreeMap<u64, Vec<SourceInput>>;

/// What each worker sends to worker 0 in a job of several processes, with the batch it cuts.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Gathered {
    /// Its input of the batch.
    Inputs(Vec<SourceInput>),
    /// Its process's state after an earlier batch `.0` (from the process's first worker).
    State(u64, Vec<crate::listener::StateSize>),
}

/// Sends every worker's input of each batch to worker 0, which sums it per batch into
/// `gathered` (probed, so a batch the probe has passed has all of its workers' input there),
/// and each process's state of the batches it finished, which worker 0 sums and reports to
/// `coord` once all `processes` have sent theirs.
fn gather<'s>(
    stream: timely::dataflow::StreamVec<'s, u64, (u64, Gathered)>,
    gathered: Rc<std::cell::RefCell<JobInputs>>,
    coord: Arc<Coordinator>,
    processes: usize,
    probe: &ProbeHandle<u64>,
) {
    use crate::listener::StateSize;
    use timely::dataflow::operators::core::{Exchange as _, Inspect as _, Probe as _};
    let mut states: std::collections::BTreeMap<u64, (usize, Vec<StateSize>)> = Default::default();
    let _ = stream
        .exchange(|_| 0)
        .inspect(move |(t, what)| match what {
            Gathered::Inputs(inputs) => {
                let mut g = gathered.borrow_mut();
                let merged = g.entry(*t).or_default();
                for input in inputs {
                    match merged.iter_mut().find(|m| m.source == input.source) {
                        Some(m) => m.merge(input.clone()),
                        None => merged.push(input.clone()),
                    }
                }
            }
            Gathered::State(done, state) => {
                let entry = states.entry(*done).or_default();
                entry.0 += 1;
                for s in state {
                    match entry.1.iter_mut().find(|m| m.operator == s.operator) {
                        Some(m) => {
                            m.keys += s.keys;
                            m.approx_bytes += s.approx_bytes;
                        }
                        None => entry.1.push(s.clone()),
                    }
                }
                if entry.0 == processes
                    && let Some((_, merged)) = states.remove(done)
                {
                    coord.report_job_state(*done, &merged);
                }
            }
        })
        .probe_with(probe);
}

/// A stable key per source for its recorded plans: its name, numbered among sources of the
/// same name in build order.
/// The key each source keeps its plans under: its position in the job (see
/// `checkpoint::sources`).
fn source_keys(feeders: &[Box<dyn Feeder>]) -> Vec<String> {
    (0..feeders.len())
        .map(crate::checkpoint::sources::key)
        .collect()
}

/// The keys earlier versions kept plans under: the name, numbered among sources of one name.
fn legacy_keys(feeders: &[Box<dyn Feeder>]) -> Vec<String> {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    feeders
        .iter()
        .map(|f| {
            let name = f.name();
            let n = seen.entry(name.clone()).or_default();
            *n += 1;
            format!("{name}#{}", *n - 1)
        })
        .collect()
}

/// Appends the plans of the batch just read to this worker's plan log, starting a new log
/// segment at every checkpoint batch (so old segments can be pruned with old snapshots).
fn record_plans(
    c: &crate::checkpoint::Checkpoint,
    log: &mut (u64, crate::checkpoint::file::LogWriter),
    feeders: &mut [Box<dyn Feeder>],
    keys: &[String],
    slot: &BatchSlot,
) -> Result<(), SluiceError> {
    let t = slot.time.millis();
    let plans: Vec<(String, Vec<u8>)> = feeders
        .iter_mut()
        .zip(keys)
        .filter_map(|(f, k)| f.plan(slot).map(|p| (k.clone(), p)))
        .collect();
    if plans.is_empty() {
        return Ok(());
    }
    if c.on_schedule(t) && log.0 != t {
        *log = (t, c.plan_log(t, slot.worker)?);
    }
    c.record_plan(&mut log.1, t, plans)
}

/// The batches this worker has cut and not yet seen finish, oldest first.
struct Finishing<'a> {
    /// Behind every output of the job.
    probe: ProbeHandle<u64>,
    in_flight: VecDeque<InFlight>,
    /// When the last batch was seen finished (the next one's processing starts no earlier).
    last_done: Instant,
    /// Process 0 of several: every worker's input of each batch, gathered.
    whole_job: Option<&'a std::cell::RefCell<JobInputs>>,
}

impl Finishing<'_> {
    /// Reports every in-flight batch the probe has passed, oldest first; with `whole_job`
    /// (process 0 of several), the input of every worker of the job instead of this worker's.
    fn report(&mut self, coord: &Coordinator, feeders: &mut [Box<dyn Feeder>]) {
        // An aborting job commits nothing more: an output that failed (or gave up) may have
        // left its batch unwritten although the probe passed it.
        if coord.aborted() {
            return;
        }
        while let Some(front) = self.in_flight.front() {
            if self.probe.less_equal(&front.t) {
                break;
            }
            let Some(b) = self.in_flight.pop_front() else {
                break;
            };
            let done_at = Instant::now();
            let started_at = b.cut_at.max(self.last_done);
            self.last_done = done_at;
            // Every output of the batch has finished everywhere: sources may commit it.
            for (f, input) in feeders.iter_mut().zip(&b.inputs) {
                f.completed(&CompletedBatch {
                    time: Time::from_millis(b.t),
                    interval_ms: coord.batch_ms,
                    records: input.records,
                    processing_delay: done_at.saturating_duration_since(started_at),
                    scheduling_delay: started_at.saturating_duration_since(b.cut_at),
                });
            }
            // Process 0 of several reports the whole job's input once (on worker 0, which
            // gathered it; its other workers' input is in there); other processes report
            // their own.
            let inputs = match self.whole_job {
                Some(g) => g.borrow_mut().remove(&b.t).unwrap_or_default(),
                None => b.inputs,
            };
            coord.report(WorkerBatch {
                batch_ms: b.t,
                inputs,
                cut_at: b.cut_at,
                started_at,
                done_at,
            });
        }
    }
}
