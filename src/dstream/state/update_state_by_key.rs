//! `update_state_by_key`: running state per key, Spark's `updateStateByKey` (see the
//! [module docs](super) for cost and purity).

use super::driver::{Batch, KeyedState};
use super::{StateInput, UpdateFn, UpdateState};
use crate::checkpoint::Changelog;
use crate::dstream::partition::{FixedMap, FixedSet};
use crate::dstream::stateful::{Stateful, shrink_if_sparse};
use crate::dstream::{DStream, Data, Key};
use crate::time::Time;

impl<'s, K: Key, V: Data> DStream<'s, (K, V)> {
    /// Running state per key (Spark's `updateStateByKey` with `(Seq[V], Option[S]) => Option[S]`):
    /// every batch, `f(new values, old state)` for every key with state or new values; `None`
    /// removes the key. See [`UpdateState`] for the other forms and the module docs for cost.
    ///
    /// # Examples
    ///
    /// ```
    /// // The course's running word count (updateStateByKey).
    /// let mut out = sluice::testing::collect_batches(vec![vec![('a', 1u64)], vec![('a', 1), ('b', 1)]], |s| {
    ///     s.update_state_by_key(|new: Vec<u64>, old: Option<u64>| Some(old.unwrap_or(0) + new.iter().sum::<u64>()))
    ///         .snapshots()
    /// })?;
    /// out[1].sort();
    /// assert_eq!(out, vec![vec![('a', 1)], vec![('a', 2), ('b', 1)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn update_state_by_key<S: Data + PartialEq>(
        &self,
        f: impl Fn(Vec<V>, Option<S>) -> Option<S> + 'static,
    ) -> Stateful<'s, (K, S)> {
        self.update_state_by_key_with(UpdateState::new(f))
    }

    /// `update_state_by_key` with a full [`UpdateState`] (time and key, purity, initial state).
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::dstream::state::UpdateState;
    /// let spec = || UpdateState::new(|new: Vec<u64>, old: Option<u64>| Some(old.unwrap_or(0) + new.iter().sum::<u64>()))
    ///     .pure()
    ///     .initial_state(vec![('a', 10)])
    ///     .name("totals");
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)]], move |s| s.update_state_by_key_with(spec()).snapshots())?;
    /// assert_eq!(out, vec![vec![('a', 11)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn update_state_by_key_with<S: Data + PartialEq>(
        &self,
        spec: UpdateState<K, V, S>,
    ) -> Stateful<'s, (K, S)> {
        let UpdateState {
            f,
            pure,
            initial,
            name,
            partitions,
        } = spec;
        let name = self.state_name("update_state_by_key", name);
        let (changes, views) = self.keyed_state(&name, initial, partitions, Update { f, pure });
        let changes = self.derive(changes);
        Stateful::of_state(changes, &views)
    }
}

/// `update_state_by_key`'s fold: per partition, each key's state and (pure functions) the keys
/// whose state changed at the previous batch.
struct Update<K, V, S> {
    f: UpdateFn<K, V, S>,
    pure: bool,
}

/// One partition of `update_state_by_key`.
struct UpdatePartition<K, S> {
    state: FixedMap<K, S>,
    /// The keys changed at the previous batch (pure functions only), each visited again.
    dirty: FixedSet<K>,
}

impl<K, S> Default for UpdatePartition<K, S> {
    fn default() -> Self {
        UpdatePartition {
            state: FixedMap::default(),
            dirty: FixedSet::default(),
        }
    }
}

impl<K: Key, V: Data, S: Data + PartialEq> KeyedState<K, V, S> for Update<K, V, S> {
    type Partition = UpdatePartition<K, S>;
    type Out = ((K, S), isize);
    const GROUPED: bool = true;

    fn state(part: &Self::Partition) -> &FixedMap<K, S> {
        &part.state
    }

    /// Whether the key changed at the snapshot's batch (pure functions visit it again).
    fn aux(part: &Self::Partition, k: &K) -> u64 {
        u64::from(part.dirty.contains(k))
    }

    fn apply(
        &mut self,
        batch: &Batch,
        part: &mut Self::Partition,
        records: Vec<(K, StateInput<V, S>)>,
        mut log: Option<&mut Changelog>,
    ) -> Vec<Self::Out> {
        let Update { f, pure } = self;
        let pure = *pure;
        let time = Time::from_millis(batch.t);
        let UpdatePartition { state, dirty } = part;
        // With incremental snapshots every change is logged as it is made. A key's aux is
        // whether it changed at the snapshot's batch: 1 for changes at a batch that is
        // snapshotted, and back to 0 at the batch after.
        let mut news: FixedMap<K, (Vec<V>, Option<S>)> = FixedMap::default();
        let mut restored: Vec<(K, S, u64, bool)> = Vec::new();
        for (k, x) in records {
            match x {
                StateInput::Value(v) => news.entry(k).or_default().0.push(v),
                StateInput::Values(vs) => {
                    let values = &mut news.entry(k).or_default().0;
                    if values.is_empty() {
                        *values = vs;
                    } else {
                        values.extend(vs);
                    }
                }
                StateInput::Initial(s) => news.entry(k).or_default().1 = Some(s),
                StateInput::Restored(s, changed, in_chain) => {
                    restored.push((k, s, changed, in_chain))
                }
            }
        }
        if let (Some(log), true) = (log.as_deref_mut(), batch.after_snapshot) {
            for k in dirty.iter() {
                if let Some(s) = state.get(k) {
                    log.push(k, Some((s, 0)));
                }
            }
        }
        let mut out: Vec<((K, S), isize)> = Vec::new();
        // Restored state is in place before the batch, marked with a diff of 0 (it is not a
        // change; snapshot views take it in). It is logged with aux 0 unless it is already so
        // in the worker's resumed chain of parts.
        for (k, s, was_changed, in_chain) in restored {
            if let (Some(log), false) = (log.as_deref_mut(), in_chain && was_changed == 0) {
                log.push(&k, Some((&s, 0)));
            }
            if was_changed == 1 {
                dirty.insert(k.clone());
            }
            state.insert(k.clone(), s.clone());
            out.push(((k, s), 0));
        }
        // Initial state is in place before the batch, as restored state is (a diff of 0: not a
        // change, but snapshot views take it in): the function sees it as the old state, and
        // what it returns replaces it (Spark's `initialRDD`).
        for (k, (_, init)) in news.iter_mut() {
            if let Some(s) = init.take() {
                if let Some(log) = log.as_deref_mut() {
                    log.push(k, Some((&s, 0)));
                }
                state.insert(k.clone(), s.clone());
                out.push(((k.clone(), s), 0));
            }
        }
        let mut next_dirty: FixedSet<K> = Default::default();
        let mut apply =
            |k: K, values: Vec<V>, old: Option<S>, state: &mut FixedMap<K, S>, out: &mut Vec<_>| {
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
                apply(k, values, old, state, &mut out);
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
                apply(k, values, None, state, &mut out);
            }
        }
        *dirty = next_dirty;
        if let Some(log) = log {
            // Changed (+1) and gone (-1 alone); restored and initial state (0) were logged
            // above.
            let aux = u64::from(batch.snapshot_due && pure);
            for ((k, s), d) in &out {
                match d {
                    1 => log.push(k, Some((s, aux))),
                    -1 if !state.contains_key(k) => log.push::<K, S>(k, None),
                    _ => {}
                }
            }
        }
        shrink_if_sparse(state);
        out
    }
}
