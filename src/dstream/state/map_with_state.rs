//! `map_with_state`: every record mapped with access to its key's state, Spark's
//! `mapWithState` (see the [module docs](super) for timeouts).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::driver::{Batch, KeyedState};
use super::{MapFn, MapWithState, State, StateInput, StateSpec, TimeoutChecks};
use crate::checkpoint::Changelog;
use crate::dstream::partition::{FixedMap, map_parts};
use crate::dstream::stateful::{Stateful, shrink_if_sparse};
use crate::dstream::stateless::Either;
use crate::dstream::{DStream, Data, Key};
use crate::runtime::Runtime;
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
            f,
            initial,
            timeout,
            checks,
            name,
            partitions,
        } = spec;
        let name = self.state_name("map_with_state", name);
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
        let op = Mapping {
            f,
            time_out: timeout_ms.map(|ms| TimeOut {
                ms,
                batch_ms,
                every,
                zero,
            }),
            runtime: self.ctx.runtime.clone(),
            name: name.clone(),
        };
        let (both, views) = self.keyed_state(&name, initial, partitions, op);
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

/// `map_with_state`'s timeouts.
struct TimeOut {
    /// How long a key may be idle, in milliseconds.
    ms: u64,
    batch_ms: u64,
    /// How often idle keys are looked for, in milliseconds (set late by `checkpoint(d)`).
    every: Rc<Cell<u64>>,
    /// The runtime, which knows the job's first batch once the job is built.
    zero: Runtime,
}

impl TimeOut {
    /// The first batch at which a key last seen at `since` may time out: the first after
    /// `since + timeout`.
    fn due(&self, since: u64) -> u64 {
        ((since + self.ms) / self.batch_ms + 1) * self.batch_ms
    }

    /// Whether idle keys are looked for at batch `t`.
    fn checks_at(&self, t: u64) -> bool {
        (t + self.batch_ms)
            .saturating_sub(self.zero.zero())
            .is_multiple_of(self.every.get())
    }
}

/// `map_with_state`'s fold: every record through the user's function with its key's state.
struct Mapping<K, V, S, U> {
    f: MapFn<K, V, S, U>,
    time_out: Option<TimeOut>,
    runtime: Runtime,
    name: String,
}

impl<K: Key, V: Data, S: Data + PartialEq, U: Data> KeyedState<K, V, S> for Mapping<K, V, S, U> {
    type Partition = KeyStates<K, S>;
    type Out = Either<U, ((K, S), isize)>;
    const GROUPED: bool = false;

    fn state(part: &Self::Partition) -> &FixedMap<K, S> {
        &part.state
    }

    /// The batch the key was last seen (`u64::MAX`: not kept, no timeout).
    fn aux(part: &Self::Partition, k: &K) -> u64 {
        part.last_seen.get(k).copied().unwrap_or(u64::MAX)
    }

    fn apply(
        &mut self,
        batch: &Batch,
        part: &mut Self::Partition,
        records: Vec<(K, StateInput<V, S>)>,
        mut log: Option<&mut Changelog>,
    ) -> Vec<Self::Out> {
        let t = batch.t;
        let time = Time::from_millis(t);
        let Mapping {
            f,
            time_out,
            runtime,
            name,
        } = self;
        let KeyStates {
            state,
            last_seen,
            expiring,
        } = part;
        let mut out: Vec<Either<U, ((K, S), isize)>> = Vec::new();
        // Restored state is in place before the batch, marked with a diff of 0.
        let (restored, records): (Vec<_>, Vec<_>) = records
            .into_iter()
            .partition(|(_, x)| matches!(x, StateInput::Restored(..)));
        for (k, x) in restored {
            let StateInput::Restored(s, seen, in_chain) = x else {
                continue;
            };
            let kept = time_out.is_some() && seen != u64::MAX;
            if let (Some(time_out), true) = (time_out.as_ref(), kept) {
                last_seen.insert(k.clone(), seen);
                expiring
                    .entry(time_out.due(seen))
                    .or_default()
                    .push(k.clone());
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
            |k: &K, last_seen: &mut FixedMap<K, u64>, expiring: &mut BTreeMap<u64, Vec<K>>| {
                if let Some(time_out) = time_out.as_ref() {
                    last_seen.insert(k.clone(), t);
                    expiring.entry(time_out.due(t)).or_default().push(k.clone());
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
                    // (Ungrouped here: one value a record. A group, should one come, is its
                    // values in order.)
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
        if let Some(time_out) = time_out.as_ref().filter(|o| o.checks_at(t)) {
            while let Some(entry) = expiring.first_entry() {
                if *entry.key() > t {
                    break;
                }
                for k in entry.remove() {
                    let idle_since = last_seen.get(&k).copied();
                    if idle_since.is_none_or(|since| since + time_out.ms >= t) {
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
                                "map_with_state `{name}` called update() on a key that is timing out (batch {time})"
                            ),
                            fix: "check state.is_timing_out() before state.update(..): a timing-out key's state is removed, as in Spark".into(),
                        });
                    }
                }
            }
        }
        for (k, old) in before {
            let new = state.get(&k);
            // A touched key's last-seen batch changed (kept with a timeout).
            if let Some(log) = log.as_deref_mut()
                && (time_out.is_some() || old.as_ref() != new)
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
        out
    }
}
