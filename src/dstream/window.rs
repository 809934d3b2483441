//! Sliding windows (Spark's `window`, `reduceByKeyAndWindow`, `countByWindow`, …).
//!
//! The window at slide time `t` covers the batches in `(t - L, t]`; output appears only at
//! slide times, which are `zero + k·S` with `zero` one interval before the first batch (Spark's
//! `zeroTime`). `L` and `S` must be multiples of the batch interval; anything else fails the job
//! when its dataflow is built, with an error that names the nearest valid value.
//!
//! **How.** A record of batch `b` enters the window at the first slide time at or after `b` and
//! leaves it at the first slide time at or after `b + L`; each worker keeps the batches of its
//! partitions until they have left, and emits what enters (`+1`) and leaves (`-1`) at each slide
//! time, partitions kept. Keyed reductions first reduce each batch (`reduce_by_key`), then:
//! - without an inverse function, differential's `reduce` folds the per-batch values of each key
//!   whose window changed (an arrangement per operator; work ∝ keys entering or leaving);
//! - with an inverse function (Spark's incremental form), a keyed operator applies
//!   `inv(old, leaving)` then `f(·, entering)`; work ∝ per-batch values entering and leaving.
//!
//! **Zero-valued keys** (with an inverse function): as in Spark, a key stays in the window's
//! state when its value returns to "zero" (say a count of 0) unless the filter function drops
//! it; `count_by_value_and_window` passes Spark's filter (`count != 0`). The plain form needs no
//! inverse function: retractions do that work, and a key leaves when its last value does.

use std::rc::Rc;
use std::time::Duration;

use std::collections::VecDeque;

use differential_dataflow::Data as DdData;
use timely::dataflow::channels::pact::Pipeline;

use super::batch_op::batch_fold_core;
use super::collection::{keyed_changes_to_parts, retime};
use super::partition::Part;
use super::stateful::{Every, Stateful};
use super::{DStream, Data, Key};
use crate::listener::StateSize;
use crate::time::multiple_of_batch;

/// Window length and slide in ms, checked against the batch interval.
#[derive(Clone, Copy, Debug)]
pub(super) struct Spec {
    length: u64,
    slide: u64,
    zero: u64,
}

impl Spec {
    /// The first slide time at or after `t`.
    fn round_up(self, t: u64) -> u64 {
        self.zero + (t.saturating_sub(self.zero)).div_ceil(self.slide) * self.slide
    }
    pub(super) fn every(self) -> Every {
        Every {
            zero: self.zero,
            slide_ms: self.slide,
        }
    }
}

pub(super) type Reducer<V> = Rc<dyn Fn(V, V) -> V>;

impl<'s, T: Data> DStream<'s, T> {
    /// Checks `L` and `S`; on error fails the job at build time and returns `None`.
    pub(super) fn window_spec(&self, length: Duration, slide: Duration) -> Option<Spec> {
        let batch = self.ctx.info.batch_ms;
        let checked = multiple_of_batch("window length", length, batch)
            .and_then(|l| multiple_of_batch("slide interval", slide, batch).map(|s| (l, s)));
        match checked {
            Ok((length, slide)) => {
                self.ctx.runtime.register_window(length);
                Some(Spec {
                    length,
                    slide,
                    zero: self.ctx.runtime.zero().saturating_sub(batch),
                })
            }
            Err(e) => {
                self.ctx.fail_build(e);
                None
            }
        }
    }

    /// The changes of the window: `(record, +1)` at the first slide time at or after its batch,
    /// `(record, -1)` at the first slide time at or after its batch + `L` (not consolidated), in
    /// the record's partition, batches in order.
    pub(super) fn window_changes(&self, spec: Spec) -> DStream<'s, (T, isize)> {
        let mut held: VecDeque<(u64, Vec<Part<T>>)> = VecDeque::new();
        let length = spec.length;
        let every = spec.every();
        let stream = batch_fold_core(
            self.stream.clone(),
            self.ticks.clone(),
            Pipeline,
            Pipeline,
            &self.ctx.name("WindowChanges"),
            true,
            Vec::new,
            |acc: &mut Vec<Part<T>>, data: &mut Vec<Part<T>>| acc.append(data),
            move |t, chunks, out| {
                held.push_back((t, chunks));
                if !every.includes(t) {
                    return;
                }
                for (b, chunks) in &held {
                    let entering = spec.round_up(*b) == t;
                    let leaving = spec.round_up(*b + length) == t;
                    for part in chunks.iter().filter(|_| entering || leaving) {
                        let mut records = Vec::new();
                        if entering {
                            records.extend(part.records.iter().map(|r| (r.clone(), 1)));
                        }
                        if leaving {
                            records.extend(part.records.iter().map(|r| (r.clone(), -1)));
                        }
                        out.push(Part::new(part.id.clone(), records));
                    }
                }
                held.retain(|(b, _)| spec.round_up(*b + length) > t);
            },
        );
        self.derive(stream)
    }

    /// All records of the batches in `(t - L, t]`, at every slide time `t` (Spark's `window`).
    /// Its [`changes`](Stateful::changes) are records entering and leaving the window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s2 = Duration::from_secs(2);
    /// let s1 = Duration::from_secs(1);
    /// // Batches of 1 s; a window of 2 s every 1 s holds this batch and the one before.
    /// let mut out = sluice::testing::collect_batches(vec![vec![1u64], vec![2], vec![3]], move |s| s.window(s2, s1).snapshots())?;
    /// out.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(out, vec![vec![1], vec![1, 2], vec![2, 3]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn window(&self, length: Duration, slide: Duration) -> Stateful<'s, T> {
        let Some(spec) = self.window_spec(length, slide) else {
            return Stateful::new(
                self.map(|t| (t, 0isize)).filter(|_| false),
                Box::new({
                    let empty = self.filter(|_| false);
                    move || empty
                }),
            );
        };
        let changes = self.window_changes(spec).on(spec.every());
        let this = self.clone();
        Stateful::new(
            changes,
            Box::new(move || {
                // Each worker keeps the window's batches of its partitions.
                let mut batches: VecDeque<(u64, Vec<Part<T>>)> = Default::default();
                let every = spec.every();
                let op_name = this.ctx.name("window");
                let runtime = this.ctx.runtime.clone();
                let stream = batch_fold_core(
                    this.stream.clone(),
                    this.ticks.clone(),
                    Pipeline,
                    Pipeline,
                    &this.ctx.name("Window"),
                    true,
                    Vec::new,
                    |acc: &mut Vec<Part<T>>, data: &mut Vec<Part<T>>| acc.append(data),
                    move |t, chunks, out| {
                        batches.push_back((t, chunks));
                        while batches.front().is_some_and(|(b, _)| *b + spec.length <= t) {
                            batches.pop_front();
                        }
                        if every.includes(t) {
                            // Spark's window is the union of its batches: each batch's
                            // partitions under the batch's position in the window.
                            for (position, (_, chunks)) in batches.iter().enumerate() {
                                out.extend(chunks.iter().map(|p| {
                                    Part::new(p.id.under(position as u32), p.records.clone())
                                }));
                            }
                        }
                        let held = batches
                            .iter()
                            .flat_map(|(_, c)| c.iter().map(|p| p.records.len()))
                            .sum();
                        runtime.report_state(t, StateSize::of::<T, ()>(&op_name, held));
                    },
                );
                this.derive(stream).on(every)
            }),
        )
    }

    /// The number of records in the window at every slide time (Spark's `countByWindow`: `0`
    /// once records have left an empty window, nothing before the first record).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s2 = Duration::from_secs(2);
    /// let s1 = Duration::from_secs(1);
    /// let out = sluice::testing::collect_batches(vec![vec!['a'], vec!['b', 'c'], vec![]], move |s| s.count_by_window(s2, s1).snapshots())?;
    /// assert_eq!(out, vec![vec![1], vec![3], vec![2]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn count_by_window(&self, length: Duration, slide: Duration) -> Stateful<'s, u64> {
        self.map(|_| 1u64)
            .reduce_by_window_inv(|a, b| a + b, |a, b| a - b, length, slide)
    }

    /// The window reduced with `f` at every slide time (Spark's `reduceByWindow`); nothing for
    /// an empty window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s2 = Duration::from_secs(2);
    /// let s1 = Duration::from_secs(1);
    /// let out = sluice::testing::collect_batches(vec![vec![1u64], vec![2], vec![3]], move |s| s.reduce_by_window(|a, b| a.max(b), s2, s1).snapshots())?;
    /// assert_eq!(out, vec![vec![1], vec![2], vec![3]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn reduce_by_window(
        &self,
        f: impl Fn(T, T) -> T + 'static,
        length: Duration,
        slide: Duration,
    ) -> Stateful<'s, T>
    where
        T: DdData,
    {
        unkeyed(
            self.map(|x| ((), x))
                .reduce_by_key_and_window(f, length, slide),
        )
    }

    /// [`reduce_by_window`](DStream::reduce_by_window) with an inverse function (Spark's
    /// incremental form): once the window has had records, an empty window gives `f`'s "zero".
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s2 = Duration::from_secs(2);
    /// let s1 = Duration::from_secs(1);
    /// let out = sluice::testing::collect_batches(vec![vec![1u64], vec![2], vec![3]], move |s| {
    ///     s.reduce_by_window_inv(|a, b| a + b, |a, b| a - b, s2, s1).snapshots()
    /// })?;
    /// assert_eq!(out, vec![vec![1], vec![3], vec![5]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn reduce_by_window_inv(
        &self,
        f: impl Fn(T, T) -> T + 'static,
        inv: impl Fn(T, T) -> T + 'static,
        length: Duration,
        slide: Duration,
    ) -> Stateful<'s, T>
    where
        T: PartialEq,
    {
        unkeyed(self.map(|x| ((), x)).reduce_by_key_and_window_inv(
            f,
            inv,
            length,
            slide,
            None::<fn(&((), T)) -> bool>,
        ))
    }

    /// How often each distinct record occurs in the window, at every slide time (Spark's
    /// `countByValueAndWindow`; records whose count drops to 0 leave).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s2 = Duration::from_secs(2);
    /// let s1 = Duration::from_secs(1);
    /// let mut out = sluice::testing::collect_batches(vec![vec!['a'], vec!['a', 'b']], move |s| s.count_by_value_and_window(s2, s1).snapshots())?;
    /// out[1].sort();
    /// assert_eq!(out, vec![vec![('a', 1)], vec![('a', 2), ('b', 1)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn count_by_value_and_window(
        &self,
        length: Duration,
        slide: Duration,
    ) -> Stateful<'s, (T, u64)>
    where
        T: Key,
    {
        self.map(|x| (x, 1u64)).reduce_by_key_and_window_inv(
            |a, b| a + b,
            |a, b| a - b,
            length,
            slide,
            Some(|(_, c): &(T, u64)| *c != 0),
        )
    }
}

/// A `Stateful` keyed by `()` seen as unkeyed.
fn unkeyed<'s, T: Data>(keyed: Stateful<'s, ((), T)>) -> Stateful<'s, T> {
    let changes = keyed.changes().map(|(((), t), d)| (t, d));
    Stateful::new(changes, Box::new(move || keyed.map(|((), t)| t)))
}

impl<'s, K: Key, V: Data> DStream<'s, (K, V)> {
    /// Reduces each key's values in the window with `f` at every slide time (Spark's
    /// `reduceByKeyAndWindow` without an inverse function). Keys and values must be `Ord` (they
    /// live in a differential arrangement).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s2 = Duration::from_secs(2);
    /// let s1 = Duration::from_secs(1);
    /// // The course's word count over the last 2 batches.
    /// let mut out = sluice::testing::collect_batches(vec![vec![('a', 1u64)], vec![('a', 1), ('b', 1)], vec![]], move |s| {
    ///     s.reduce_by_key_and_window(|a, b| a + b, s2, s1).snapshots()
    /// })?;
    /// out.iter_mut().for_each(|b| b.sort());
    /// assert_eq!(out, vec![vec![('a', 1)], vec![('a', 2), ('b', 1)], vec![('a', 1), ('b', 1)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn reduce_by_key_and_window(
        &self,
        f: impl Fn(V, V) -> V + 'static,
        length: Duration,
        slide: Duration,
    ) -> Stateful<'s, (K, V)>
    where
        K: DdData,
        V: DdData,
    {
        self.reduce_by_key_and_window_into(f, length, slide, None)
    }

    /// [`reduce_by_key_and_window`](DStream::reduce_by_key_and_window) into `partitions`
    /// partitions (Spark's `numPartitions`); `None` for the job's default.
    pub(crate) fn reduce_by_key_and_window_into(
        &self,
        f: impl Fn(V, V) -> V + 'static,
        length: Duration,
        slide: Duration,
        partitions: Option<usize>,
    ) -> Stateful<'s, (K, V)>
    where
        K: DdData,
        V: DdData,
    {
        let f: Reducer<V> = Rc::new(f);
        let Some(spec) = self.window_spec(length, slide) else {
            return empty_stateful(self);
        };
        let g = Rc::clone(&f);
        let per_batch = self
            .reduce_by_key_into(move |a, b| g(a, b), partitions)
            .transform(|t, kvs| kvs.into_iter().map(move |(k, v)| (k, (t.millis(), v))));
        let tagged = per_batch.window_changes(spec).changes_to_collection();
        let n = self.shuffle_partitions(partitions);
        let reduced = tagged.reduce(move |_key, values, out| {
            // Values are (batch, value), in batch order; each batch's value appears once.
            let mut acc: Option<V> = None;
            for ((_, v), r) in values {
                for _ in 0..*r {
                    acc = Some(match acc.take() {
                        Some(a) => f(a, v.clone()),
                        None => v.clone(),
                    });
                }
            }
            if let Some(a) = acc {
                out.push((a, 1isize));
            }
        });
        let name = self.ctx.name("WindowReduced");
        let by_key = keyed_changes_to_parts(
            retime(reduced),
            self.ticks.clone(),
            n,
            self.ctx.info.partitioner,
            &name,
        );
        let changes = self.derive(by_key).only_batches().on(spec.every());
        Stateful::upserts(changes, spec.every())
    }

    /// Each key's values in the window at every slide time (Spark's `groupByKeyAndWindow`); its
    /// change stream is `window(L, S).changes()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let s2 = Duration::from_secs(2);
    /// let s1 = Duration::from_secs(1);
    /// let mut out = sluice::testing::collect_batches(vec![vec![('a', 1u64)], vec![('a', 2)]], move |s| s.group_by_key_and_window(s2, s1))?;
    /// out.iter_mut().for_each(|b| b.iter_mut().for_each(|(_, vs)| vs.sort()));
    /// assert_eq!(out, vec![vec![('a', vec![1])], vec![('a', vec![1, 2])]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn group_by_key_and_window(
        &self,
        length: Duration,
        slide: Duration,
    ) -> DStream<'s, (K, Vec<V>)> {
        self.window(length, slide).group_by_key()
    }
}

pub(super) fn empty_stateful<'s, T: Data, U: Data>(of: &DStream<'s, U>) -> Stateful<'s, T> {
    let none = of.flat_map(|_| None::<T>);
    let changes = none.map(|t| (t, 0isize));
    Stateful::new(changes, Box::new(move || none))
}
