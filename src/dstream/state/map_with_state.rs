//! `map_with_state`: every record mapped with access to its key's state, Spark's
//! `mapWithState` (see the [module docs](super) for timeouts).

use std::collections::BTreeMap;

use super::{MapWithState, State, StateSpec, TimeoutChecks};
use super::{StateInput, save_state};
use crate::dstream::partition::{FixedMap, Part, PartitionId, map_parts, shuffle_batches};
use crate::dstream::stateful::{StateViews, Stateful, shrink_if_sparse};
use crate::dstream::stateless::Either;
use crate::dstream::{DStream, Data, Key};
use crate::listener::StateSize;
use crate::time::Time;

/// One partition's keyed state in `map_with_state`.
struct KeyStates<K, S> {
    state: FixedMap<K, S>,
    last_seen: FixedMap<K, u64>,
    expiring: BTreeMap<u64, Vec<K>>,
}

impl<K, S> Default for KeyStates<K, S> {
    fn default() -> Self {
        KeyStates {
            state: FixedMap::default(),
            last_seen: FixedMap::default(),
            expiring: BTreeMap::new(),
        }
    }
}

impl<'s, K: Key, V: Data> DStream<'s, (K, V)> {
    /// Maps every record with access to its key's state (Spark's `mapWithState`); see
    /// [`StateSpec`]. Records of a key are seen in the order they arrived on their worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::dstream::state::StateSpec;
    /// // Emits each word with its running count (Spark's mapWithState example).
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64), ('a', 1)], vec![('a', 1)]], |s| {
    ///     let spec = StateSpec::function(|_time, word: &char, one: Option<u64>, state| {
    ///         let count = state.get().copied().unwrap_or(0) + one.unwrap_or(0);
    ///         state.update(count);
    ///         Some((*word, count))
    ///     });
    ///     (*s.map_with_state(spec)).clone()
    /// })?;
    /// assert_eq!(out, vec![vec![('a', 1), ('a', 2)], vec![('a', 3)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn map_with_state<S: Data + PartialEq, U: Data>(
        &self,
        spec: StateSpec<K, V, S, U>,
    ) -> MapWithState<'s, U, K, S> {
        let StateSpec {
            mut f,
            initial,
            timeout,
            checks,
            name,
            partitions,
        } = spec;
        let given = name.is_some();
        let name = name.unwrap_or_else(|| self.ctx.name("map_with_state"));
        self.ctx.register_state(&name, given);
        let batch_ms = self.ctx.info.batch_ms;
        let timeout_ms = timeout.map(|d| (d.as_millis() as u64).max(1));
        // Batches at which timeouts are looked for: all, or the ends of check intervals (with
        // Spark's schedule, the state stream's checkpoint interval: `checkpoint(d)` sets it).
        let spark_schedule = checks == TimeoutChecks::SparkSchedule;
        let check_every = match checks {
            TimeoutChecks::EveryBatch => batch_ms,
            TimeoutChecks::SparkSchedule => 10 * batch_ms,
            TimeoutChecks::Every(d) => {
                let ms = d.as_millis() as u64;
                if ms == 0 || !ms.is_multiple_of(batch_ms) {
                    self.ctx
                        .fail_build(crate::error::SluiceError::NotAMultipleOfBatch {
                            what: "timeout check interval",
                            given_ms: ms,
                            batch_ms,
                            suggestion: ms.div_ceil(batch_ms).max(1) * batch_ms,
                        });
                }
                ms.max(batch_ms)
            }
        };
        let check_cell = std::rc::Rc::new(std::cell::Cell::new(check_every));
        let every = std::rc::Rc::clone(&check_cell);
        let zero = self.ctx.runtime.clone(); // the job's first batch, known once built
        // A key last seen at `since` may time out at the first batch after `since + timeout`.
        let due = move |since: u64, ms: u64| ((since + ms) / batch_ms + 1) * batch_ms;
        let runtime = self.ctx.runtime.clone();
        let mut store = runtime.state_store(&name);
        let n = self.shuffle_partitions(partitions);
        let input = self.with_start_state(&name, initial, n, false);
        // Per partition: each key's state, when it was last seen, and when keys may time out.
        let mut states: BTreeMap<u32, KeyStates<K, S>> = BTreeMap::new();
        let op_name = name.clone();
        let partitioner = self.ctx.info.partitioner;
        let views = StateViews::shared();
        let offered = std::rc::Rc::clone(&views);
        let both = shuffle_batches(
            input,
            self.ticks.clone(),
            n,
            &name,
            move |(k, _): &(K, StateInput<V, S>)| partitioner.partition(k, n),
            move |t, partitions, parts: &mut Vec<Part<Either<U, ((K, S), isize)>>>| {
                let time = Time::from_millis(t);
                // With incremental snapshots every change of a key's state or last-seen batch
                // (its aux) is logged as it is made.
                let mut log = store.as_mut().and_then(|s| s.log());
                for (q, records) in partitions {
                    let KeyStates {
                        state,
                        last_seen,
                        expiring,
                    } = states.entry(q).or_default();
                    let mut out: Vec<Either<U, ((K, S), isize)>> = Vec::new();
                    // Restored state is in place before the batch, marked with a diff of 0.
                    let (restored, records): (Vec<_>, Vec<_>) = records
                        .into_iter()
                        .partition(|(_, x)| matches!(x, StateInput::Restored(..)));
                    for (k, x) in restored {
                        let StateInput::Restored(s, seen, in_chain) = x else {
                            continue;
                        };
                        let kept = timeout_ms.is_some() && seen != u64::MAX;
                        if let (Some(ms), true) = (timeout_ms, kept) {
                            last_seen.insert(k.clone(), seen);
                            expiring.entry(due(seen, ms)).or_default().push(k.clone());
                        }
                        // Logged unless the worker's resumed chain holds it as it is.
                        let aux = if kept { seen } else { u64::MAX };
                        if let (Some(log), false) = (log.as_deref_mut(), in_chain && aux == seen) {
                            log.push(&k, Some((&s, aux)));
                        }
                        state.insert(k.clone(), s.clone());
                        out.push(Either::Right(((k, s), 0)));
                    }
                    // The state of every key touched in this batch as it was before the batch.
                    let mut before: FixedMap<K, Option<S>> = Default::default();
                    let touch =
                        |k: &K,
                         last_seen: &mut FixedMap<K, u64>,
                         expiring: &mut BTreeMap<u64, Vec<K>>| {
                            if let Some(ms) = timeout_ms {
                                last_seen.insert(k.clone(), t);
                                expiring.entry(due(t, ms)).or_default().push(k.clone());
                            }
                        };
                    // Initial state before the batch's records: they see it (Spark's initial RDD).
                    let (initial, values): (Vec<_>, Vec<_>) = records
                        .into_iter()
                        .partition(|(_, x)| matches!(x, StateInput::Initial(_)));
                    for (k, x) in initial.into_iter().chain(values) {
                        if !before.contains_key(&k) {
                            before.insert(k.clone(), state.get(&k).cloned());
                        }
                        match x {
                            StateInput::Initial(initial) | StateInput::Restored(initial, ..) => {
                                state.insert(k.clone(), initial);
                            }
                            StateInput::Value(_) | StateInput::Values(_) => {
                                // (Ungrouped here: one value a record. A group, should one
                                // come, is its values in order.)
                                let (one, group) = match x {
                                    StateInput::Value(v) => (Some(v), Vec::new()),
                                    StateInput::Values(vs) => (None, vs),
                                    _ => (None, Vec::new()),
                                };
                                for v in one.into_iter().chain(group) {
                                    let mut handle = State::new(state.remove(&k), false);
                                    if let Some(u) = f(time, &k, Some(v), &mut handle) {
                                        out.push(Either::Left(u));
                                    }
                                    if let (Some(s), _) = handle.finish() {
                                        state.insert(k.clone(), s);
                                    }
                                }
                            }
                        }
                        touch(&k, last_seen, expiring);
                    }
                    // Keys idle past the timeout, at a check: called once, then forgotten.
                    let check = (t + batch_ms)
                        .saturating_sub(zero.zero())
                        .is_multiple_of(every.get());
                    while let Some(entry) = expiring.first_entry().filter(|_| check) {
                        if *entry.key() > t {
                            break;
                        }
                        for k in entry.remove() {
                            let idle_since = last_seen.get(&k).copied();
                            let Some(ms) = timeout_ms else { break };
                            if idle_since.is_none_or(|since| since + ms >= t) {
                                continue; // touched again since: a later entry covers it
                            }
                            last_seen.remove(&k);
                            let Some(s) = state.remove(&k) else { continue };
                            before.entry(k.clone()).or_insert_with(|| Some(s.clone()));
                            let mut handle = State::new(Some(s), true);
                            if let Some(u) = f(time, &k, None, &mut handle) {
                                out.push(Either::Left(u));
                            }
                            if handle.finish().1 {
                                runtime.fail(crate::error::SluiceError::InvalidConfig {
                                problem: format!(
                                    "map_with_state `{op_name}` called update() on a key that is timing out (batch {time})"
                                ),
                                fix: "check state.is_timing_out() before state.update(..): a timing-out key's state is removed, as in Spark".into(),
                            });
                            }
                        }
                    }
                    for (k, old) in before {
                        let new = state.get(&k);
                        // A touched key's last-seen batch changed (kept with a timeout).
                        if let Some(log) = log.as_deref_mut()
                            && (timeout_ms.is_some() || old.as_ref() != new)
                        {
                            let seen = last_seen.get(&k).copied().unwrap_or(u64::MAX);
                            log.push(&k, new.map(|s| (s, seen)));
                        }
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
                    shrink_if_sparse(state);
                    shrink_if_sparse(last_seen);
                    parts.push(Part::new(PartitionId::new(q), out));
                }
                let keys = states.values().map(|s| s.state.len()).sum();
                runtime.report_state(t, StateSize::of::<K, S>(&op_name, keys));
                offered
                    .borrow_mut()
                    .offer(t, states.iter().map(|(q, p)| (*q, &p.state)));
                if let Some(store) = store.as_mut().filter(|_| runtime.snapshot_due(t)) {
                    // A key's aux is the batch it was last seen (`u64::MAX`: not kept).
                    save_state(store, &runtime, &op_name, t, keys, || {
                        states
                            .values()
                            .flat_map(|p| {
                                p.state.iter().map(|(k, s)| {
                                    (k, s, p.last_seen.get(k).copied().unwrap_or(u64::MAX))
                                })
                            })
                            .collect()
                    });
                }
            },
        );
        let mapped = self.derive(map_parts(both.clone(), "Mapped", |records| {
            records
                .into_iter()
                .filter_map(|x| match x {
                    Either::Left(u) => Some(u),
                    Either::Right(_) => None,
                })
                .collect()
        }));
        let changes = self.derive(map_parts(both, "StateChanges", |records| {
            records
                .into_iter()
                .filter_map(|x| match x {
                    Either::Left(_) => None,
                    Either::Right(c) => Some(c),
                })
                .collect()
        }));
        MapWithState {
            mapped,
            state: Stateful::of_state(changes, &views),
            timeout_checks: spark_schedule.then_some(check_cell),
        }
    }
}
