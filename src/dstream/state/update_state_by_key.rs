//! `update_state_by_key`: running state per key, Spark's `updateStateByKey` (see the
//! [module docs](super) for cost and purity).

use std::collections::BTreeMap;

use super::UpdateState;
use super::{StateInput, save_state};
use crate::dstream::partition::{FixedMap, FixedSet, Part, PartitionId, shuffle_batches};
use crate::dstream::stateful::{StateViews, Stateful, shrink_if_sparse};
use crate::dstream::{DStream, Data, Key};
use crate::listener::StateSize;
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
        let given = name.is_some();
        let name = name.unwrap_or_else(|| self.ctx.name("update_state_by_key"));
        self.ctx.register_state(&name, given);
        let runtime = self.ctx.runtime.clone();
        let mut store = runtime.state_store(&name);
        let n = self.shuffle_partitions(partitions);
        let input = self.with_start_state(&name, initial, n, true);
        // Per partition: each key's state, and (pure functions) the keys changed last batch.
        let mut states: BTreeMap<u32, (FixedMap<K, S>, FixedSet<K>)> = BTreeMap::new();
        // Whether the previous batch was snapshotted (its changed keys had aux 1).
        let mut snapshotted = false;
        let op_name = name.clone();
        let partitioner = self.ctx.info.partitioner;
        let views = StateViews::shared();
        let offered = std::rc::Rc::clone(&views);
        let changes = shuffle_batches(
            input,
            self.ticks.clone(),
            n,
            &name,
            move |(k, _): &(K, StateInput<V, S>)| partitioner.partition(k, n),
            move |t, partitions, parts| {
                let time = Time::from_millis(t);
                let due = store.is_some() && runtime.snapshot_due(t);
                let after_snapshot = std::mem::replace(&mut snapshotted, due);
                // With incremental snapshots every change is logged as it is made. A key's aux
                // is whether it changed at the snapshot's batch: 1 for changes at a batch that
                // is snapshotted, and back to 0 at the batch after.
                let mut log = store.as_mut().and_then(|s| s.log());
                for (q, records) in partitions {
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
                    let (state, dirty) = states.entry(q).or_default();
                    if let (Some(log), true) = (log.as_deref_mut(), after_snapshot) {
                        for k in dirty.iter() {
                            if let Some(s) = state.get(k) {
                                log.push(k, Some((s, 0)));
                            }
                        }
                    }
                    let mut out: Vec<((K, S), isize)> = Vec::new();
                    // Restored state is in place before the batch, marked with a diff of 0 (it is
                    // not a change; snapshot views take it in). It is logged with aux 0 unless it
                    // is already so in the worker's resumed chain of parts.
                    for (k, s, was_changed, in_chain) in restored {
                        if let (Some(log), false) =
                            (log.as_deref_mut(), in_chain && was_changed == 0)
                        {
                            log.push(&k, Some((&s, 0)));
                        }
                        if was_changed == 1 {
                            dirty.insert(k.clone());
                        }
                        state.insert(k.clone(), s.clone());
                        out.push(((k, s), 0));
                    }
                    // Initial state is in place before the batch, as restored state is (a diff of 0:
                    // not a change, but snapshot views take it in): the function sees it as the old
                    // state, and what it returns replaces it (Spark's `initialRDD`).
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
                        |k: K,
                         values: Vec<V>,
                         old: Option<S>,
                         state: &mut FixedMap<K, S>,
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
                    if let Some(log) = log.as_deref_mut() {
                        // Changed (+1) and gone (-1 alone); restored and initial state (0)
                        // were logged above.
                        let aux = u64::from(due && pure);
                        for ((k, s), d) in &out {
                            match d {
                                1 => log.push(k, Some((s, aux))),
                                -1 if !state.contains_key(k) => log.push::<K, S>(k, None),
                                _ => {}
                            }
                        }
                    }
                    shrink_if_sparse(state);
                    parts.push(Part::new(PartitionId::new(q), out));
                }
                let keys = states.values().map(|(s, _)| s.len()).sum();
                runtime.report_state(t, StateSize::of::<K, S>(&op_name, keys));
                offered
                    .borrow_mut()
                    .offer(t, states.iter().map(|(q, (state, _))| (*q, state)));
                if let Some(store) = store.as_mut().filter(|_| due) {
                    save_state(store, &runtime, &op_name, t, keys, || {
                        states
                            .values()
                            .flat_map(|(state, dirty)| {
                                state
                                    .iter()
                                    .map(|(k, s)| (k, s, u64::from(dirty.contains(k))))
                            })
                            .collect()
                    });
                }
            },
        );
        let changes = self.derive(changes);
        Stateful::of_state(changes, &views)
    }
}
