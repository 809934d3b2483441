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
//! **Timeouts** (`map_with_state`): a key idle (no records) for at least the timeout is
//! called once with `state.is_timing_out()` at the *first batch* where that holds, then its state
//! is removed. Spark only looks for idle keys on checkpoint batches (every 10 batches by
//! default), so its timeouts fire up to 10 batches late; sluice's are prompt.

use std::collections::BTreeMap;
use std::time::Duration;

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Concat;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

use super::batch_op::batch_fold;
use super::pair::route;
use super::stateful::{shrink_if_sparse, upsert_snapshots, Every, Stateful};
use super::stateless::Either;
use super::{DStream, Data, Key};
use crate::listener::StateSize;
use crate::time::Time;

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
}

impl<K, V, S> UpdateState<K, V, S> {
    /// `f(new values, old state)`: `Some` is the new state, `None` removes the key.
    pub fn new(f: impl Fn(Vec<V>, Option<S>) -> Option<S> + 'static) -> Self {
        UpdateState {
            f: Box::new(move |_t, _k, v, s| f(v, s)),
            pure: false,
            initial: Vec::new(),
            name: None,
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
    /// Sets the state. Ignored (with a warning) while the key is timing out: its state is being
    /// removed, as in Spark, where this throws.
    pub fn update(&mut self, value: S) {
        if self.timing_out {
            tracing::warn!("map_with_state: update() on a key that is timing out is ignored");
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
    name: Option<String>,
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
            name: None,
        }
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
}

impl<'s, U: Data, K: Key, S: Data> MapWithState<'s, U, K, S> {
    /// Every key's state at every batch (Spark's `stateSnapshots()`).
    pub fn state_snapshots(&self) -> DStream<'s, (K, S)> {
        self.state.snapshots()
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
    /// The user's initial state for the key (a fresh start).
    Initial(S),
    /// The key's state restored from a checkpoint, with the operator's own word on the key
    /// (`update_state_by_key`: 1 if the key changed at the snapshot batch; `map_with_state`:
    /// the batch the key was last seen, `u64::MAX` for never).
    Restored(S, u64),
}

impl<'s, K: Key, V: Data> DStream<'s, (K, V)> {
    /// The records as `(key, Value(v))`, and at the first batch of this run the state the
    /// operator starts with: restored from the checkpoint when one is resumed and holds
    /// operator `name`, else this worker's share of `initial`.
    fn with_start_state<S: Data>(
        &self,
        name: &str,
        initial: Vec<(K, S)>,
    ) -> StreamVec<'s, u64, (K, StateInput<V, S>)> {
        let coord = std::sync::Arc::clone(&self.ctx.coord);
        let info = self.ctx.info;
        let name = name.to_owned();
        let mine: Vec<(K, S)> = initial
            .into_iter()
            .enumerate()
            .filter(|(j, _)| j % info.peers == info.index)
            .map(|(_, x)| x)
            .collect();
        let start = source(self.stream.scope(), "StartState", move |cap, _info| {
            let mut start = Some((cap, mine));
            move |output| {
                let Some((cap, initial)) = start.take() else {
                    return;
                };
                // Decided once the dataflow is built, before the first step.
                let cap = cap.delayed(&coord.first_batch());
                let mut session = output.session(&cap);
                let restoring = coord
                    .checkpoint()
                    .filter(|c| c.restored_batch().is_some() && c.has_operator(&name));
                let Some(c) = restoring else {
                    session.give_iterator(
                        initial
                            .into_iter()
                            .map(|(k, s)| (k, StateInput::Initial(s))),
                    );
                    return;
                };
                for part in c.take_parts(&name, info.index, info.peers) {
                    match bincode::deserialize::<Vec<(K, S, u64)>>(&part) {
                        Ok(entries) => session.give_iterator(
                            entries
                                .into_iter()
                                .map(|(k, s, aux)| (k, StateInput::Restored(s, aux))),
                        ),
                        Err(e) => coord.fail(crate::error::SluiceError::InvalidConfig {
                            problem: format!(
                                "the checkpointed state of operator `{name}` cannot be read with this job's key and state types ({e})"
                            ),
                            fix: "restore it with the types it was written with, or give the operator a new name to start it empty".into(),
                        }),
                    }
                }
            }
        });
        self.stream
            .clone()
            .map(|(k, v)| (k, StateInput::Value(v)))
            .concat(start)
    }

    /// Running state per key (Spark's `updateStateByKey` with `(Seq[V], Option[S]) => Option[S]`):
    /// every batch, `f(new values, old state)` for every key with state or new values; `None`
    /// removes the key. See [`UpdateState`] for the other forms and the module docs for cost.
    pub fn update_state_by_key<S: Data + PartialEq>(
        &self,
        f: impl Fn(Vec<V>, Option<S>) -> Option<S> + 'static,
    ) -> Stateful<'s, (K, S)> {
        self.update_state_by_key_with(UpdateState::new(f))
    }

    /// `update_state_by_key` with a full [`UpdateState`] (time and key, purity, initial state).
    pub fn update_state_by_key_with<S: Data + PartialEq>(
        &self,
        spec: UpdateState<K, V, S>,
    ) -> Stateful<'s, (K, S)> {
        let UpdateState {
            f,
            pure,
            initial,
            name,
        } = spec;
        let name = name.unwrap_or_else(|| self.ctx.name("update_state_by_key"));
        self.ctx.register_state(&name);
        let coord = std::sync::Arc::clone(&self.ctx.coord);
        let info = self.ctx.info;
        let input = self.with_start_state(&name, initial);
        let mut state: foldhash::HashMap<K, S> = Default::default();
        let mut dirty: foldhash::HashSet<K> = Default::default();
        let op_name = name.clone();
        let changes = batch_fold(
            input,
            self.ticks.clone(),
            Exchange::new(|(k, _): &(K, StateInput<V, S>)| route(k)),
            Pipeline,
            &name,
            <(foldhash::HashMap<K, (Vec<V>, Option<S>)>, Vec<(K, S, u64)>)>::default,
            |(acc, restored), data: &mut Vec<(K, StateInput<V, S>)>| {
                for (k, x) in data.drain(..) {
                    match x {
                        StateInput::Value(v) => acc.entry(k).or_default().0.push(v),
                        StateInput::Initial(s) => acc.entry(k).or_default().1 = Some(s),
                        StateInput::Restored(s, changed) => restored.push((k, s, changed)),
                    }
                }
            },
            move |t, (mut news, restored), out: &mut Vec<((K, S), isize)>| {
                let time = Time::from_millis(t);
                // Restored state is in place before the batch, marked with a diff of 0 (it is
                // not a change; snapshot views take it in).
                for (k, s, changed) in restored {
                    if changed == 1 {
                        dirty.insert(k.clone());
                    }
                    state.insert(k.clone(), s.clone());
                    out.push(((k, s), 0));
                }
                // Initial state first, as if it had been there before this batch.
                for (k, (_, init)) in news.iter_mut() {
                    if let Some(s) = init.take() {
                        if let Some(old) = state.insert(k.clone(), s.clone()) {
                            out.push(((k.clone(), old), -1));
                        }
                        out.push(((k.clone(), s), 1));
                    }
                }
                let mut next_dirty: foldhash::HashSet<K> = Default::default();
                let mut apply = |k: K,
                                 values: Vec<V>,
                                 old: Option<S>,
                                 state: &mut foldhash::HashMap<K, S>,
                                 out: &mut Vec<((K, S), isize)>| {
                    let new = f(time, &k, values, old.clone());
                    if new == old {
                        if let Some(s) = new {
                            state.insert(k, s);
                        }
                        return;
                    }
                    if let Some(o) = old {
                        out.push(((k.clone(), o), -1));
                    }
                    match new {
                        Some(n) => {
                            out.push(((k.clone(), n.clone()), 1));
                            state.insert(k.clone(), n);
                            // Only a pure function skips keys; the others visit every key.
                            if pure {
                                next_dirty.insert(k);
                            }
                        }
                        None => {
                            state.remove(&k);
                        }
                    }
                };
                if pure {
                    let mut visit: Vec<K> = news.keys().cloned().collect();
                    visit.extend(dirty.drain().filter(|k| !news.contains_key(k)));
                    for k in visit {
                        let values = news.remove(&k).map(|(v, _)| v).unwrap_or_default();
                        let old = state.remove(&k);
                        apply(k, values, old, &mut state, out);
                    }
                } else {
                    // Spark's rule: every key with state, every batch; updated in place.
                    let mut gone = Vec::new();
                    for (k, s) in state.iter_mut() {
                        let values = if news.is_empty() {
                            Vec::new()
                        } else {
                            news.remove(k).map(|(v, _)| v).unwrap_or_default()
                        };
                        match f(time, k, values, Some(s.clone())) {
                            Some(n) if n == *s => {}
                            Some(n) => {
                                out.push(((k.clone(), std::mem::replace(s, n.clone())), -1));
                                out.push(((k.clone(), n), 1));
                            }
                            None => {
                                out.push(((k.clone(), s.clone()), -1));
                                gone.push(k.clone());
                            }
                        }
                    }
                    for k in gone {
                        state.remove(&k);
                    }
                    for (k, (values, _)) in news.drain() {
                        apply(k, values, None, &mut state, out);
                    }
                }
                dirty = next_dirty;
                shrink_if_sparse(&mut state);
                coord.report_state(t, StateSize::of::<K, S>(&op_name, state.len()));
                if coord.snapshot_due(t) {
                    let entries: Vec<(&K, &S, u64)> = state
                        .iter()
                        .map(|(k, s)| (k, s, u64::from(dirty.contains(k))))
                        .collect();
                    write_state_part(&coord, &op_name, t, info, &entries);
                }
            },
        );
        let changes = self.derive(changes);
        let c = changes.clone();
        Stateful::new(
            changes,
            Box::new(move || upsert_snapshots(&c, Every::Batch)),
        )
    }

    /// Maps every record with access to its key's state (Spark's `mapWithState`); see
    /// [`StateSpec`]. Records of a key are seen in the order they arrived on their worker.
    pub fn map_with_state<S: Data + PartialEq, U: Data>(
        &self,
        spec: StateSpec<K, V, S, U>,
    ) -> MapWithState<'s, U, K, S> {
        let StateSpec {
            mut f,
            initial,
            timeout,
            name,
        } = spec;
        let name = name.unwrap_or_else(|| self.ctx.name("map_with_state"));
        self.ctx.register_state(&name);
        let batch_ms = self.ctx.info.batch_ms;
        let timeout_ms = timeout.map(|d| (d.as_millis() as u64).max(1));
        let coord = std::sync::Arc::clone(&self.ctx.coord);
        let info = self.ctx.info;
        let input = self.with_start_state(&name, initial);
        let mut state: foldhash::HashMap<K, S> = Default::default();
        let mut last_seen: foldhash::HashMap<K, u64> = Default::default();
        let mut expiring: BTreeMap<u64, Vec<K>> = BTreeMap::new();
        let op_name = name.clone();
        let both = batch_fold(
            input,
            self.ticks.clone(),
            Exchange::new(|(k, _): &(K, StateInput<V, S>)| route(k)),
            Pipeline,
            &name,
            Vec::new,
            |acc: &mut Vec<(K, StateInput<V, S>)>, data| acc.append(data),
            move |t, records, out: &mut Vec<Either<U, ((K, S), isize)>>| {
                let time = Time::from_millis(t);
                // Restored state is in place before the batch, marked with a diff of 0.
                let (restored, records): (Vec<_>, Vec<_>) = records
                    .into_iter()
                    .partition(|(_, x)| matches!(x, StateInput::Restored(..)));
                for (k, x) in restored {
                    let StateInput::Restored(s, seen) = x else {
                        continue;
                    };
                    if let (Some(ms), true) = (timeout_ms, seen != u64::MAX) {
                        last_seen.insert(k.clone(), seen);
                        expiring
                            .entry((seen + ms).div_ceil(batch_ms) * batch_ms)
                            .or_default()
                            .push(k.clone());
                    }
                    state.insert(k.clone(), s.clone());
                    out.push(Either::Right(((k, s), 0)));
                }
                // The state of every key touched in this batch as it was before the batch.
                let mut before: foldhash::HashMap<K, Option<S>> = Default::default();
                let touch = |k: &K,
                             last_seen: &mut foldhash::HashMap<K, u64>,
                             expiring: &mut BTreeMap<u64, Vec<K>>| {
                    if let Some(ms) = timeout_ms {
                        last_seen.insert(k.clone(), t);
                        expiring
                            .entry((t + ms).div_ceil(batch_ms) * batch_ms)
                            .or_default()
                            .push(k.clone());
                    }
                };
                for (k, x) in records {
                    if !before.contains_key(&k) {
                        before.insert(k.clone(), state.get(&k).cloned());
                    }
                    match x {
                        StateInput::Initial(initial) | StateInput::Restored(initial, _) => {
                            state.insert(k.clone(), initial);
                        }
                        StateInput::Value(v) => {
                            let mut handle = State {
                                value: state.remove(&k),
                                changed: false,
                                timing_out: false,
                            };
                            if let Some(u) = f(time, &k, Some(v), &mut handle) {
                                out.push(Either::Left(u));
                            }
                            if let Some(s) = handle.value {
                                state.insert(k.clone(), s);
                            }
                        }
                    }
                    touch(&k, &mut last_seen, &mut expiring);
                }
                // Keys idle for at least the timeout: called once, then forgotten.
                while let Some(entry) = expiring.first_entry() {
                    if *entry.key() > t {
                        break;
                    }
                    for k in entry.remove() {
                        let idle_since = last_seen.get(&k).copied();
                        let Some(ms) = timeout_ms else { break };
                        if idle_since.is_none_or(|since| since + ms > t) {
                            continue; // touched again since: a later entry covers it
                        }
                        last_seen.remove(&k);
                        let Some(s) = state.remove(&k) else { continue };
                        before.entry(k.clone()).or_insert_with(|| Some(s.clone()));
                        let mut handle = State {
                            value: Some(s),
                            changed: false,
                            timing_out: true,
                        };
                        if let Some(u) = f(time, &k, None, &mut handle) {
                            out.push(Either::Left(u));
                        }
                    }
                }
                for (k, old) in before {
                    let new = state.get(&k);
                    if old.as_ref() == new {
                        continue;
                    }
                    if let Some(o) = old {
                        out.push(Either::Right(((k.clone(), o), -1)));
                    }
                    if let Some(n) = new {
                        out.push(Either::Right(((k, n.clone()), 1)));
                    }
                }
                shrink_if_sparse(&mut state);
                shrink_if_sparse(&mut last_seen);
                coord.report_state(t, StateSize::of::<K, S>(&op_name, state.len()));
                if coord.snapshot_due(t) {
                    let entries: Vec<(&K, &S, u64)> = state
                        .iter()
                        .map(|(k, s)| (k, s, last_seen.get(k).copied().unwrap_or(u64::MAX)))
                        .collect();
                    write_state_part(&coord, &op_name, t, info, &entries);
                }
            },
        );
        let mapped = self.derive(both.clone().flat_map(|x| match x {
            Either::Left(u) => Some(u),
            Either::Right(_) => None,
        }));
        let changes = self.derive(both.flat_map(|x| match x {
            Either::Left(_) => None,
            Either::Right(c) => Some(c),
        }));
        let c = changes.clone();
        MapWithState {
            mapped,
            state: Stateful::new(
                changes,
                Box::new(move || upsert_snapshots(&c, Every::Batch)),
            ),
        }
    }
}

/// Writes this worker's share of operator `name`'s state after batch `t` to the checkpoint. A
/// failed write is logged: the snapshot is then incomplete and recovery uses an older one.
fn write_state_part<K: serde::Serialize, S: serde::Serialize>(
    coord: &crate::context::coordinator::Coordinator,
    name: &str,
    t: u64,
    info: super::WorkerInfo,
    entries: &[(&K, &S, u64)],
) {
    let Some(c) = coord.checkpoint() else {
        return;
    };
    let written = bincode::serialize(entries)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            c.write_part(name, t, info.index, info.peers, &bytes)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        tracing::warn!("checkpoint: state of `{name}` after batch {t} ms not written: {e}");
    }
}
