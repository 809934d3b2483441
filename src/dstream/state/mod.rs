//! Running per-key state across batches: `update_state_by_key` and `map_with_state`.
//!
//! Both are keyed operators: records are routed to the worker that owns their key, which keeps
//! that key's state in a hash map. Each batch they emit the state's *changes* (`-old`, `+new`);
//! Spark's full-state view is built from those only when used (see [`Stateful`]).
//!
//! **Cost.** Spark's `updateStateByKey` calls the function for every key with state on every
//! batch, so a batch costs O(all keys). `update_state_by_key` keeps that rule (it is what the
//! function may rely on, e.g. to age state). A function declared **pure** with
//! [`UpdateState::pure`] — its result depends only on the key, the new values and the old
//! state — is called only for keys with new values and keys whose state changed at the previous
//! batch: a key whose state `f(∅, s) == s` is at a fixpoint and would not change again, so a
//! batch costs O(keys touched). `map_with_state` is O(records + keys timing out) per batch.
//!
//! **Timeouts** (`map_with_state`): a key whose last record came before `t - timeout` (strictly,
//! as Spark compares) is called once with `state.is_timing_out()` at the first check at or after
//! such a batch `t`, then its state is removed. Spark only looks for idle keys on checkpoint
//! batches (every 10 batches by default), so its timeouts fire up to 10 batches late; sluice
//! checks at every batch unless asked for Spark's schedule ([`TimeoutChecks`]).

use std::time::Duration;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::core::Concat;
use timely::dataflow::operators::generic::Operator;

use super::partition::{Part, PartitionId, Parts, map_parts};

use super::stateful::Stateful;
use super::{DStream, Data, Key};
use crate::checkpoint::{FullEntry, StateStore};
use crate::time::Time;

mod driver;
mod map_with_state;
mod update_state_by_key;

type UpdateFn<K, V, S> = Box<dyn Fn(Time, &K, Vec<V>, Option<S>) -> Option<S>>;

/// How [`DStream::update_state_by_key_with`] updates state (Spark's `updateStateByKey` forms).
///
/// # Examples
///
/// ```
/// use sluice::dstream::state::UpdateState;
/// // Spark's (Seq[V], Option[S]) => Option[S], declared pure, with an initial state:
/// let spec = UpdateState::new(|new: Vec<u64>, old: Option<u64>| Some(old.unwrap_or(0) + new.iter().sum::<u64>()))
///     .pure()
///     .initial_state(vec![("spark".to_owned(), 10)])
///     .name("word-totals");
/// ```
pub struct UpdateState<K, V, S> {
    f: UpdateFn<K, V, S>,
    pure: bool,
    initial: Vec<(K, S)>,
    name: Option<String>,
    pub(crate) partitions: Option<usize>,
}

impl<K, V, S> UpdateState<K, V, S> {
    /// `f(new values, old state)`: `Some` is the new state, `None` removes the key.
    pub fn new(f: impl Fn(Vec<V>, Option<S>) -> Option<S> + 'static) -> Self {
        UpdateState {
            f: Box::new(move |_t, _k, v, s| f(v, s)),
            pure: false,
            initial: Vec::new(),
            name: None,
            partitions: None,
        }
    }
    /// `f(batch time, key, new values, old state)` (Spark's form with time and key).
    pub fn with_time_and_key(
        f: impl Fn(Time, &K, Vec<V>, Option<S>) -> Option<S> + 'static,
    ) -> Self {
        UpdateState {
            f: Box::new(f),
            pure: false,
            initial: Vec::new(),
            name: None,
            partitions: None,
        }
    }
    /// Declares `f` pure: its result depends only on the key, the values and the old state (not
    /// on the time, a clock, randomness or side effects). Keys without new values whose state
    /// did not change at the previous batch are then skipped.
    pub fn pure(mut self) -> Self {
        self.pure = true;
        self
    }
    /// State the keys start with (Spark's `initialRDD`), applied at the first batch before its
    /// values. Every worker may pass the same list; each key is kept once.
    pub fn initial_state(mut self, initial: Vec<(K, S)>) -> Self {
        self.initial = initial;
        self
    }
    /// A stable name for metrics (and, later, checkpoints).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// The state of one key as `map_with_state`'s function sees it (Spark's `State`).
#[derive(Debug)]
pub struct State<S> {
    value: Option<S>,
    changed: bool,
    timing_out: bool,
    /// `update` was called while timing out (Spark throws; the job fails with it).
    updated_while_timing_out: bool,
}

impl<S> State<S> {
    pub(crate) fn new(value: Option<S>, timing_out: bool) -> Self {
        State {
            value,
            changed: false,
            timing_out,
            updated_while_timing_out: false,
        }
    }

    /// The state after the function, and whether it misused `update`.
    pub(crate) fn finish(self) -> (Option<S>, bool) {
        (self.value, self.updated_while_timing_out)
    }
}

impl<S> State<S> {
    /// Whether the key has state.
    pub fn exists(&self) -> bool {
        self.value.is_some()
    }
    /// The state, if any.
    pub fn get(&self) -> Option<&S> {
        self.value.as_ref()
    }
    /// Sets the state. While the key is timing out this is an error, as in Spark (where it
    /// throws "Cannot update the state that is timing out"): the job fails with it after the
    /// function returns; check [`is_timing_out`](State::is_timing_out) first.
    pub fn update(&mut self, value: S) {
        if self.timing_out {
            self.updated_while_timing_out = true;
            return;
        }
        self.value = Some(value);
        self.changed = true;
    }
    /// Removes the state.
    pub fn remove(&mut self) {
        self.value = None;
        self.changed = true;
    }
    /// True when the function is called because the key timed out (with no value).
    pub fn is_timing_out(&self) -> bool {
        self.timing_out
    }
}

type MapFn<K, V, S, U> = Box<dyn FnMut(Time, &K, Option<V>, &mut State<S>) -> Option<U>>;

/// When `map_with_state` looks for keys that timed out.
///
/// Either way a key times out at a check at batch `t` when its last record came at a batch
/// before `t - timeout` (strictly: Spark's `lastUpdated < t - timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimeoutChecks {
    /// At every batch: a key times out at the first batch past its timeout (the default).
    #[default]
    EveryBatch,
    /// Only at checkpoint batches, every 10 batch intervals from the job's first batch: Spark's
    /// schedule (its state RDD scans for timeouts only when it is checkpointed), so timeouts
    /// fire up to 10 batches late, exactly when Spark's do.
    SparkSchedule,
    /// At the end of every interval of this length (a multiple of the batch interval), as
    /// Spark's schedule after `stream.checkpoint(interval)`.
    Every(Duration),
}

/// How [`DStream::map_with_state`] maps records and keeps state (Spark's `StateSpec`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sluice::dstream::state::StateSpec;
/// // Running count per word; emits (word, count so far); forgets words idle for 30 s.
/// let spec = StateSpec::function(|_time, word: &String, one: Option<u64>, state| {
///     let count = state.get().copied().unwrap_or(0) + one.unwrap_or(0);
///     if !state.is_timing_out() {
///         state.update(count);
///     }
///     Some((word.clone(), count))
/// })
/// .timeout(Duration::from_secs(30));
/// ```
pub struct StateSpec<K, V, S, U> {
    f: MapFn<K, V, S, U>,
    initial: Vec<(K, S)>,
    timeout: Option<Duration>,
    checks: TimeoutChecks,
    name: Option<String>,
    pub(crate) partitions: Option<usize>,
}

impl<K, V, S, U> StateSpec<K, V, S, U> {
    /// `f(batch time, key, value, state)` for every record, in order, and once with no value
    /// for a key that times out; its `Some` results form the mapped stream.
    pub fn function(
        f: impl FnMut(Time, &K, Option<V>, &mut State<S>) -> Option<U> + 'static,
    ) -> Self {
        StateSpec {
            f: Box::new(f),
            initial: Vec::new(),
            timeout: None,
            checks: TimeoutChecks::EveryBatch,
            name: None,
            partitions: None,
        }
    }
    /// Spark's simple form `StateSpec.function((key, value, state) => mapped)`: `f(key, value,
    /// state)` for every record (and once with `None` for a key that times out); every result
    /// is in the mapped stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::dstream::state::StateSpec;
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)], vec![('a', 2)]], |s| {
    ///     let spec = StateSpec::simple(|k: &char, v: Option<u64>, state| {
    ///         let sum = state.get().copied().unwrap_or(0) + v.unwrap_or(0);
    ///         state.update(sum);
    ///         (*k, sum)
    ///     });
    ///     (*s.map_with_state(spec)).clone()
    /// })?;
    /// assert_eq!(out, vec![vec![('a', 1)], vec![('a', 3)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn simple(mut f: impl FnMut(&K, Option<V>, &mut State<S>) -> U + 'static) -> Self {
        Self::function(move |_time, k, v, state| Some(f(k, v, state)))
    }
    /// When timeouts are looked for (default: every batch; [`TimeoutChecks::SparkSchedule`]
    /// reproduces Spark's timing).
    pub fn timeout_checks(mut self, checks: TimeoutChecks) -> Self {
        self.checks = checks;
        self
    }
    /// State the keys start with, applied at the first batch.
    pub fn initial_state(mut self, initial: Vec<(K, S)>) -> Self {
        self.initial = initial;
        self
    }
    /// Removes the state of keys without records for at least `idle` (rounded up to batches).
    pub fn timeout(mut self, idle: Duration) -> Self {
        self.timeout = Some(idle);
        self
    }
    /// A stable name for metrics (and, later, checkpoints).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// The result of [`DStream::map_with_state`]: the mapped records (through `Deref`), and the
/// state as snapshots or changes.
pub struct MapWithState<'s, U: Data, K: Key, S: Data> {
    mapped: DStream<'s, U>,
    state: Stateful<'s, (K, S)>,
    /// With Spark's timeout schedule: the check interval, which `checkpoint` sets.
    timeout_checks: Option<std::rc::Rc<std::cell::Cell<u64>>>,
}

impl<'s, U: Data, K: Key, S: Data> MapWithState<'s, U, K, S> {
    /// Spark's `mapWithStateStream.checkpoint(interval)`: the state is snapshotted at least
    /// every `interval` (see [`Stateful::checkpoint`]), and with
    /// [`TimeoutChecks::SparkSchedule`] timeouts are looked for every `interval` instead of
    /// every 10 batches, as Spark scans for them when it checkpoints the state.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sluice::dstream::state::{StateSpec, TimeoutChecks};
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)], vec![], vec![], vec![]], |s| {
    ///     let spec = StateSpec::function(|_t, k: &char, v: Option<u64>, state| {
    ///         if state.is_timing_out() { return Some(*k); }
    ///         state.update(v.unwrap_or(0));
    ///         None
    ///     })
    ///     .timeout(Duration::from_secs(1))
    ///     .timeout_checks(TimeoutChecks::SparkSchedule);
    ///     (*s.map_with_state(spec).checkpoint(Duration::from_secs(2))).clone()
    /// })?;
    /// assert_eq!(out, vec![vec![], vec![], vec![], vec!['a']]); // found at the check of 4000 ms
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn checkpoint(self, interval: Duration) -> Self {
        let ctx = &self.mapped.ctx;
        match crate::time::multiple_of_batch("checkpoint interval", interval, ctx.info.batch_ms) {
            Ok(ms) => {
                ctx.runtime.register_checkpoint_interval(ms);
                if let Some(every) = &self.timeout_checks {
                    every.set(ms);
                }
            }
            Err(e) => ctx.fail_build(e),
        }
        self
    }

    /// Every key's state at every batch (Spark's `stateSnapshots()`).
    ///
    /// To print the state, print [`state`](Self::state) instead: it hands on only the records
    /// `print(n)` shows, where this view copies every key at every batch.
    pub fn state_snapshots(&self) -> DStream<'s, (K, S)> {
        self.state.snapshots()
    }

    /// The keyed state itself: [`Stateful::print`] of it shows what
    /// `state_snapshots().print(n)` shows, without copying the whole state every batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::dstream::state::StateSpec;
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)], vec![('a', 2)]], |s| {
    ///     let spec = StateSpec::function(|_t, _k: &char, v: Option<u64>, state| {
    ///         let n = state.get().copied().unwrap_or(0) + v.unwrap_or(0);
    ///         state.update(n);
    ///         None::<()>
    ///     });
    ///     s.map_with_state(spec).state().snapshots()
    /// })?;
    /// assert_eq!(out, vec![vec![('a', 1)], vec![('a', 3)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn state(&self) -> &Stateful<'s, (K, S)> {
        &self.state
    }
    /// What changed in the state at each batch.
    pub fn state_changes(&self) -> DStream<'s, ((K, S), isize)> {
        self.state.changes()
    }
}

impl<'s, U: Data, K: Key, S: Data> std::ops::Deref for MapWithState<'s, U, K, S> {
    type Target = DStream<'s, U>;
    fn deref(&self) -> &DStream<'s, U> {
        &self.mapped
    }
}

/// What enters a state operator: a record's value, or a key's starting state.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) enum StateInput<V, S> {
    /// A record.
    Value(V),
    /// The records of one key from one input partition, in their order: `update_state_by_key`
    /// groups them before the shuffle, so one record per key and partition crosses it.
    Values(Vec<V>),
    /// The user's initial state for the key (a fresh start).
    Initial(S),
    /// The key's state restored from a checkpoint, with the operator's own word on the key
    /// (`update_state_by_key`: 1 if the key changed at the snapshot batch; `map_with_state`:
    /// the batch the key was last seen, `u64::MAX` for never), and whether the entry is
    /// already in the worker's resumed chain of snapshot parts (then only a change of it is
    /// logged; see [`StateStore::resume`](crate::checkpoint::snapshot::StateStore::resume)).
    Restored(S, u64, InChain),
}

/// Whether a restored entry is part of the chain of snapshot parts its worker resumed.
pub(crate) type InChain = bool;

impl<'s, K: Key, V: Data> DStream<'s, (K, V)> {
    /// The records as `(key, Value(v))`, and at the first batch of this run the state the
    /// operator starts with: restored from the checkpoint when one is resumed and holds
    /// operator `name`, else this worker's share of `initial`.
    ///
    /// A worker whose restored keys all stay with it in the operator's `partitions` hash
    /// partitions resumes its chain of snapshot parts, and marks them in it.
    ///
    /// `grouped`: each input partition's values of a key travel together
    /// ([`StateInput::Values`], in their order, keys in the order they first appear); else
    /// one [`StateInput::Value`] per record, in the partition's order.
    fn with_start_state<S: Data>(
        &self,
        name: &str,
        initial: Vec<(K, S)>,
        partitions: usize,
        grouped: bool,
    ) -> Parts<'s, (K, StateInput<V, S>)> {
        let runtime = self.ctx.runtime.clone();
        let info = self.ctx.info;
        // Start state travels in a chunk of its own, sorted after the data's partitions.
        let start_id = PartitionId::from_path(&[u64::MAX, info.index as u64]);
        // Whether it restores is decided after the whole dataflow is built (windows built
        // later choose how old a snapshot must be).
        let store = runtime.state_store(name);
        let mine: Vec<(K, S)> = initial
            .into_iter()
            .enumerate()
            .filter(|(j, _)| j % info.peers == info.index)
            .map(|(_, x)| x)
            .collect();
        // The state enters at the first batch of *this* stream: its first tick, which after a
        // window whose slide is longer than the batch is the first slide time (Spark applies
        // the initial state at the state stream's first batch).
        let start = self
            .ticks
            .clone()
            .unary(Pipeline, "StartState", move |_cap, _info| {
                let mut start = Some(mine);
                move |input, output| {
                    let mut first: Option<Capability<u64>> = None;
                    input.for_each(|cap, _ticks| {
                        let Some(&t) = cap.least() else {
                            return;
                        };
                        if first
                            .as_ref()
                            .is_none_or(|f: &Capability<u64>| t < *f.time())
                        {
                            first = Some(cap.delayed(&t, 0));
                        }
                    });
                    let Some(cap) = first else {
                        return;
                    };
                    let Some(initial) = start.take() else {
                        return;
                    };
                    let mut session = output.session(&cap);
                    let records = match store.as_ref().filter(|s| s.restoring()) {
                        None => initial
                            .into_iter()
                            .map(|(k, s)| (k, StateInput::Initial(s)))
                            .collect(),
                        Some(store) => match store.restore::<K, S>() {
                            Ok(restored) => {
                                let stays = |k: &K| {
                                    PartitionId::new(info.partitioner.partition(k, partitions))
                                        .worker(info.peers)
                                        == info.index
                                };
                                let in_chain = match restored.resumable {
                                    Some(chain) if restored.entries.iter().all(|e| stays(&e.0)) => {
                                        store.resume(chain);
                                        true
                                    }
                                    _ => false,
                                };
                                restored
                                    .entries
                                    .into_iter()
                                    .map(|(k, s, aux)| (k, StateInput::Restored(s, aux, in_chain)))
                                    .collect()
                            }
                            Err(e) => {
                                runtime.fail(e);
                                Vec::new()
                            }
                        },
                    };
                    session.give(Part::new(start_id.clone(), records));
                }
            });
        let values = map_parts(
            self.stream.clone(),
            "StateValues",
            move |records: Vec<(K, V)>| {
                if !grouped {
                    return records
                        .into_iter()
                        .map(|(k, v)| (k, StateInput::Value(v)))
                        .collect();
                }
                let mut groups: indexmap::IndexMap<K, Vec<V>, foldhash::fast::FixedState> =
                    Default::default();
                for (k, v) in records {
                    groups.entry(k).or_default().push(v);
                }
                groups
                    .into_iter()
                    .map(|(k, vs)| (k, StateInput::Values(vs)))
                    .collect()
            },
        );
        values.concat(start)
    }
}

/// Saves this worker's share of operator `name`'s state after batch `t` (`keys` keys) and
/// reports it: the changes the operator logged since its previous snapshot, or every entry
/// (`full`) when the store needs them (see [`StateStore::save`]); written in the background.
/// A failed write is logged: the snapshot is then incomplete and recovery uses an older one.
fn save_state<'a, K, S>(
    store: &mut StateStore,
    runtime: &crate::runtime::Runtime,
    name: &str,
    t: u64,
    keys: usize,
    full: impl FnOnce() -> Vec<FullEntry<'a, K, S>>,
) where
    K: Key + 'a,
    S: Data + 'a,
{
    let started = std::time::Instant::now();
    let saved = store.save(t, keys, full);
    let mut write = crate::listener::SnapshotWrite {
        operator: name.to_owned(),
        duration: started.elapsed(),
        ..Default::default()
    };
    match saved {
        Ok(saved) => {
            write.bytes = saved.bytes as u64;
            write.keys = saved.entries as u64;
            write.full_parts = u64::from(saved.full);
            write.failed = saved.failed;
        }
        Err(e) => {
            write.failed = 1;
            tracing::warn!("checkpoint: state of `{name}` after batch {t} ms not written: {e}");
        }
    }
    runtime.report_snapshot(t, write);
}
