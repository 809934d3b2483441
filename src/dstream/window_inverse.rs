//! Windows reduced incrementally with an inverse function (Spark's `reduceByKeyAndWindow(f,
//! inv, L, S, filter)`, under `countByWindow`, `countByValueAndWindow` and
//! `reduceByWindow(f, inv, …)`): at each slide, a key's window value is updated with what
//! entered (`f`) and what left (`inv`), instead of being reduced again from the window's values.
//!
//! Invariants: a key's value is always that of the values in its window (what entered applied
//! before what left, so that a count never goes below zero on the way); a key is kept while any
//! of its values is in the window, whether the filter shows it or not, and while it is shown
//! (Spark keeps a key back at zero unless the filter drops it). Where Spark's own incremental
//! rule departs from the window's value (a slide longer than the window; a key its filter
//! dropped), sluice keeps the window's value: see the README and `tests/windows_state.rs`.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use timely::dataflow::channels::pact::Pipeline;

use super::batch_op::batch_fold;
use super::partition::{FixedMap, Part, PartitionId};
use super::stateful::{Stateful, shrink_if_sparse};
use super::window::{Reducer, empty_stateful};
use super::{DStream, Data, Key};
use crate::listener::StateSize;

impl<'s, K: Key, V: Data> DStream<'s, (K, V)> {
    /// Spark's incremental `reduceByKeyAndWindow(f, inv, L, S, filter)`: the window's value of a
    /// key is updated with `inv(old, leaving)` then `f(·, entering)`. Keys stay when their value
    /// returns to zero unless `filter` (given the key and new value) returns false.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s2 = Duration::from_secs(2);
    /// let s1 = Duration::from_secs(1);
    /// // Spark's incremental form: add what enters, subtract what leaves; drop keys back at 0.
    /// let mut out = sluice::testing::collect_batches(vec![vec![('a', 1i64)], vec![('b', 1)], vec![]], move |s| {
    ///     s.reduce_by_key_and_window_inv(|a, b| a + b, |a, b| a - b, s2, s1, Some(|(_, v): &(char, i64)| *v != 0)).snapshots()
    /// })?;
    /// out.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(out, vec![vec![('a', 1)], vec![('a', 1), ('b', 1)], vec![('b', 1)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn reduce_by_key_and_window_inv(
        &self,
        f: impl Fn(V, V) -> V + 'static,
        inv: impl Fn(V, V) -> V + 'static,
        length: Duration,
        slide: Duration,
        filter: Option<impl Fn(&(K, V)) -> bool + 'static>,
    ) -> Stateful<'s, (K, V)>
    where
        V: PartialEq,
    {
        self.reduce_by_key_and_window_inv_into(f, inv, length, slide, None, filter)
    }

    /// [`reduce_by_key_and_window_inv`](DStream::reduce_by_key_and_window_inv) into
    /// `partitions` partitions (Spark's `reduceByKeyAndWindow(f, invF, L, S, numPartitions,
    /// filterFunc)`); `None` for the job's default.
    pub(crate) fn reduce_by_key_and_window_inv_into(
        &self,
        f: impl Fn(V, V) -> V + 'static,
        inv: impl Fn(V, V) -> V + 'static,
        length: Duration,
        slide: Duration,
        partitions: Option<usize>,
        filter: Option<impl Fn(&(K, V)) -> bool + 'static>,
    ) -> Stateful<'s, (K, V)>
    where
        V: PartialEq,
    {
        let f: Reducer<V> = Rc::new(f);
        let Some(spec) = self.window_spec(length, slide) else {
            return empty_stateful(self);
        };
        let g = Rc::clone(&f);
        let per_batch = self.reduce_by_key_into(move |a, b| g(a, b), partitions);
        // Entering values at +1, leaving at -1, at slide times; routed by key.
        // (Already in their keys' partitions: the per-batch reduction shuffled them.)
        let moves = per_batch.window_changes(spec);
        let mut states: BTreeMap<PartitionId, FixedMap<K, InvEntry<V>>> = BTreeMap::new();
        let every = spec.every();
        let (f_absorb, f_finish) = (Rc::clone(&f), f);
        let op_name = self.ctx.name("reduce_by_key_and_window_inv");
        let runtime = self.ctx.runtime.clone();
        type Moves<K, V> = BTreeMap<PartitionId, FixedMap<K, InvMoves<V>>>;
        let changes = batch_fold(
            moves.stream.clone(),
            moves.ticks.clone(),
            Pipeline,
            Pipeline,
            &op_name.clone(),
            Moves::<K, V>::new,
            move |acc, data: &mut Vec<Part<((K, V), isize)>>| {
                // Per key: the leaving values reduced with f, the entering ones, and how many
                // values the window gains (negative: loses).
                for part in data.drain(..) {
                    let acc = acc.entry(part.id).or_default();
                    for ((k, v), d) in part.records {
                        let moves = acc.entry(k).or_default();
                        moves.count += d;
                        let slot = if d < 0 {
                            &mut moves.leaving
                        } else {
                            &mut moves.entering
                        };
                        for _ in 0..d.unsigned_abs() {
                            *slot = Some(match slot.take() {
                                Some(a) => f_absorb(a, v.clone()),
                                None => v.clone(),
                            });
                        }
                    }
                }
            },
            move |t, moved, parts: &mut Vec<Part<((K, V), isize)>>| {
                if !every.includes(t) {
                    return;
                }
                for (id, moved) in moved {
                    let state = states.entry(id.clone()).or_default();
                    let mut out = Vec::new();
                    for (k, m) in moved {
                        let old = state.remove(&k);
                        // The window's true value: the old one with what entered, less what
                        // left (entering first, so that a count never goes below zero on the
                        // way: with a slide longer than the window, values enter and leave at
                        // one slide). Spark computes `inv(old, leaving)` then `f(·, entering)`
                        // from the *shown* old value, which miscounts a slide longer than the
                        // window and a key its filter dropped (see the README).
                        let value =
                            match (old.as_ref().map(|o| o.value.clone()), m.leaving, m.entering) {
                                (Some(v), l, e) => {
                                    let with = match e {
                                        Some(e) => f_finish(v, e),
                                        None => v,
                                    };
                                    Some(match l {
                                        Some(l) => inv(with, l),
                                        None => with,
                                    })
                                }
                                (None, Some(l), Some(e)) => Some(inv(e, l)),
                                (None, None, e) => e,
                                (None, Some(_), None) => None,
                            };
                        let count = old.as_ref().map_or(0, |o| o.count) + m.count;
                        let visible = value.as_ref().is_some_and(|v| {
                            filter
                                .as_ref()
                                .is_none_or(|keep| keep(&(k.clone(), v.clone())))
                        });
                        let was = old.as_ref().filter(|o| o.visible).map(|o| o.value.clone());
                        let now = value.clone().filter(|_| visible);
                        if was != now {
                            if let Some(o) = was {
                                out.push(((k.clone(), o), -1));
                            }
                            if let Some(v) = now {
                                out.push(((k.clone(), v), 1));
                            }
                        }
                        // Kept while values of the key are in the window (shown or not), and
                        // while shown (Spark keeps a key back at zero unless the filter drops it).
                        if let Some(value) = value
                            && (count > 0 || visible)
                        {
                            state.insert(
                                k,
                                InvEntry {
                                    value,
                                    count,
                                    visible,
                                },
                            );
                        }
                    }
                    shrink_if_sparse(state);
                    parts.push(Part::new(id, out));
                }
                states.retain(|_, s| !s.is_empty());
                let keys = states.values().map(|s| s.len()).sum();
                runtime.report_state(t, StateSize::of::<K, V>(&op_name, keys));
            },
        );
        let changes = self.derive(changes).on(spec.every());
        Stateful::upserts(changes, spec.every())
    }
}

/// One key of the incremental window: its value over the values in the window, how many values
/// that is, and whether the filter shows it.
struct InvEntry<V> {
    value: V,
    count: isize,
    visible: bool,
}

/// What one slide moves of a key: the leaving values and the entering ones, each reduced, and
/// the change in how many values the window holds.
struct InvMoves<V> {
    leaving: Option<V>,
    entering: Option<V>,
    count: isize,
}

impl<V> Default for InvMoves<V> {
    fn default() -> Self {
        InvMoves {
            leaving: None,
            entering: None,
            count: 0,
        }
    }
}
