//! [`Stateful`]: the result of a windowed or stateful operator, as Spark's DStream and as a
//! change stream.
//!
//! Spark's windowed and stateful DStreams hold the *whole* window or state at every batch
//! (every slide for windows). Producing that costs one record per key per batch, whatever
//! changed, so sluice builds it only when it is used: dereferencing a `Stateful` (calling any
//! DStream method on it, such as `print`) builds the snapshot operator once. The change stream
//! ([`Stateful::changes`]) costs only what changed: `(record, -1)` for a value that is gone and
//! `(record, +1)` for one that is new, at the batch where it happens; a sink can upsert just
//! those.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::hash::Hash;
use std::ops::Deref;
use std::rc::Rc;

use differential_dataflow::VecCollection;
use timely::dataflow::channels::pact::Pipeline;

use std::collections::BTreeMap;

use super::batch_op::batch_fold_core;
use super::partition::{FixedMap, Part, PartitionId, by_partition};
use super::{DStream, Data, Key};

type Build<'s, T> = Box<dyn FnOnce() -> DStream<'s, T> + 's>;

/// A windowed or stateful DStream: Spark's full snapshots (through `Deref`) and its changes.
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # use sluice::{StreamingConfig, StreamingContext, CollectedBatches, source::BatchQueue};
/// let queue = BatchQueue::from_batches(vec![vec![("a".to_owned(), 1u64)], vec![("b".to_owned(), 1)], vec![("a".to_owned(), 1)]]);
/// let (totals, changes) = (CollectedBatches::new(), CollectedBatches::new());
/// # let config = StreamingConfig::new(Duration::from_secs(1))?.as_fast_as_possible(1).first_batch_ms(1000).max_batches(3);
/// let (q, t, c) = (queue.clone(), totals.clone(), changes.clone());
/// StreamingContext::new(config).run(move |job| {
///     let running = job.queue_stream(&q).update_state_by_key(|new: Vec<u64>, old: Option<u64>| {
///         Some(old.unwrap_or(0) + new.iter().sum::<u64>())
///     });
///     running.collect_into(&t);           // Spark's view: every key, every batch
///     running.changes().collect_into(&c); // only what changed
/// })?;
/// let mut last = totals.batch_ms(3000);
/// last.sort();
/// assert_eq!(last, vec![("a".to_owned(), 2), ("b".to_owned(), 1)]);
/// let mut third = changes.batch_ms(3000);
/// third.sort();
/// assert_eq!(third, vec![(("a".to_owned(), 1), -1), (("a".to_owned(), 2), 1)]);
/// # Ok::<(), sluice::SluiceError>(())
/// ```
pub struct Stateful<'s, T: Data> {
    changes: DStream<'s, (T, isize)>,
    build: Cell<Option<Build<'s, T>>>,
    snapshots: OnceCell<DStream<'s, T>>,
    /// Spark's view with at most `n` records of each partition, where the operator can build
    /// one (keyed upserts): what [`print`](Stateful::print) needs of a large state.
    limited: Option<Limited<'s, T>>,
}

type Limited<'s, T> = Box<dyn Fn(usize) -> DStream<'s, T> + 's>;

impl<'s, T: Data> Stateful<'s, T> {
    pub(crate) fn new(changes: DStream<'s, (T, isize)>, build: Build<'s, T>) -> Self {
        Stateful {
            changes,
            build: Cell::new(Some(build)),
            snapshots: OnceCell::new(),
            limited: None,
        }
    }

    /// What changed at each batch: `(record, -1)` for a value that is gone, `(record, +1)` for a
    /// new one (a changed value is both). Empty for batches where nothing changed. State
    /// restored from a checkpoint is not a change and does not appear here.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::dstream::state::UpdateState;
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)], vec![('a', 2)], vec![]], |s| {
    ///     s.update_state_by_key(|new: Vec<u64>, old: Option<u64>| Some(old.unwrap_or(0) + new.iter().sum::<u64>()))
    ///         .changes()
    /// })?;
    /// // -old, +new when a key's state changes; nothing when it does not.
    /// assert_eq!(out, vec![vec![(('a', 1), 1)], vec![(('a', 1), -1), (('a', 3), 1)], vec![]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn changes(&self) -> DStream<'s, (T, isize)> {
        self.changes.filter(|(_, d)| *d != 0)
    }

    /// The state (or window) as a differential dataflow collection, for joins and further
    /// incremental operators; state restored from a checkpoint enters it at the first batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use sluice::testing::run_batches;
    /// run_batches(vec![vec![('a', 1u64)]], |s| {
    ///     let totals = s.update_state_by_key(|new: Vec<u64>, old: Option<u64>| Some(old.unwrap_or(0) + new.iter().sum::<u64>()));
    ///     // A differential collection: join it, count it, arrange it.
    ///     totals.collection().inspect(|((k, v), t, d)| assert_eq!((*k, *v, *t, *d), ('a', 1, 1000, 1)));
    ///     s.print(1);
    /// })?;
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn collection(&self) -> VecCollection<'s, u64, T, isize> {
        self.changes
            .map(|(r, d)| (r, if d == 0 { 1 } else { d }))
            .changes_to_collection()
    }

    /// Spark's `checkpoint(interval)` on a stateful or windowed stream: its state is
    /// snapshotted (with the job's checkpoint directory) at least every `interval`, a multiple
    /// of the batch interval. Snapshots are one consistent cut of every operator, so the job
    /// snapshots at the multiples of every interval asked for and of the job's own
    /// ([`StreamingConfig::checkpoint_interval`](crate::StreamingConfig::checkpoint_interval)).
    /// Without a checkpoint directory there is nothing to snapshot and this changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)], vec![('a', 1)]], |s| {
    ///     s.update_state_by_key(|new: Vec<u64>, old: Option<u64>| Some(old.unwrap_or(0) + new.iter().sum::<u64>()))
    ///         .checkpoint(Duration::from_secs(2))
    ///         .snapshots()
    /// })?;
    /// assert_eq!(out, vec![vec![('a', 1)], vec![('a', 2)]]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn checkpoint(self, interval: std::time::Duration) -> Self {
        let ctx = &self.changes.ctx;
        match crate::time::multiple_of_batch("checkpoint interval", interval, ctx.info.batch_ms) {
            Ok(ms) => ctx.runtime.register_checkpoint_interval(ms),
            Err(e) => ctx.fail_build(e),
        }
        self
    }

    /// Spark's `print(n)` of the whole window or state: the first `n` records of every batch
    /// (every slide for windows), as [`DStream::print`] prints them from
    /// [`snapshots`](Stateful::snapshots). Unless the full view is built anyway, a keyed state
    /// hands on only each partition's first `n + 1` records (as Spark's `take(n + 1)` computes
    /// only what it shows), so printing a state of millions of keys costs what it prints.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let text = Arc::new(Mutex::new(Vec::<u8>::new()));
    /// let t = Arc::clone(&text);
    /// sluice::testing::run_batches(vec![vec![('a', 1u64), ('b', 1), ('c', 1)]], move |s| {
    ///     s.update_state_by_key(|new: Vec<u64>, old: Option<u64>| Some(old.unwrap_or(0) + new.iter().sum::<u64>()))
    ///         .print_to(2, Arc::clone(&t))
    /// })?;
    /// let text = String::from_utf8(text.lock().unwrap().clone()).unwrap();
    /// assert_eq!(text.lines().filter(|l| l.starts_with('(')).count(), 2); // two of three, then `...`
    /// assert!(text.contains("...\n"));
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn print(&self, n: usize)
    where
        T: crate::SparkDisplay,
    {
        self.print_to(
            n,
            std::sync::Arc::new(std::sync::Mutex::new(std::io::stdout())),
        );
    }

    /// [`print`](Stateful::print) to any writer.
    pub fn print_to<W: std::io::Write + Send + 'static>(
        &self,
        n: usize,
        out: std::sync::Arc<std::sync::Mutex<W>>,
    ) where
        T: crate::SparkDisplay,
    {
        match (&self.limited, self.snapshots.get()) {
            (Some(limited), None) => limited(n.saturating_add(1)).print_to(n, out),
            _ => self.deref().print_to(n, out),
        }
    }

    /// Spark's view: the whole window or state at every batch (every slide for windows).
    ///
    /// # Examples
    ///
    /// ```
    /// let out = sluice::testing::collect_batches(vec![vec![('a', 1u64)], vec![], vec![('b', 5)]], |s| {
    ///     s.update_state_by_key(|new: Vec<u64>, old: Option<u64>| Some(old.unwrap_or(0) + new.iter().sum::<u64>()))
    ///         .snapshots()
    /// })?;
    /// let mut last = out[2].clone();
    /// last.sort();
    /// assert_eq!(out[1], vec![('a', 1)]); // every key at every batch, as Spark's updateStateByKey
    /// assert_eq!(last, vec![('a', 1), ('b', 5)]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn snapshots(&self) -> DStream<'s, T> {
        self.deref().clone()
    }
}

impl<'s, K: Key, V: Data + PartialEq> Stateful<'s, (K, V)> {
    /// Spark's view of a window's keyed upserts (`-old`, `+new` per key in `changes`; see
    /// [`upsert_snapshots`]) at every batch `every` includes.
    pub(crate) fn upserts(changes: DStream<'s, ((K, V), isize)>, every: Every) -> Self {
        Self::keyed(changes, move |c, limit| upsert_snapshots(c, every, limit))
    }

    /// Spark's view of a keyed state at every batch, copied from the stateful operator's own
    /// state by the operator (see [`StateViews`]): the views keep no state of their own.
    pub(crate) fn of_state(
        changes: DStream<'s, ((K, V), isize)>,
        views: &Rc<RefCell<StateViews<K, V>>>,
    ) -> Self {
        let views = Rc::clone(views);
        Self::keyed(changes, move |c, limit| state_view(c, &views, limit))
    }

    /// A keyed `Stateful` whose views `view(changes, limit)` builds: the full one (`limit`
    /// `usize::MAX`) on first use, or one of at most `limit` records a partition for `print`.
    fn keyed(
        changes: DStream<'s, ((K, V), isize)>,
        view: impl Fn(&DStream<'s, ((K, V), isize)>, usize) -> DStream<'s, (K, V)> + 's,
    ) -> Self {
        let view = Rc::new(view);
        let (c, limited, full) = (changes.clone(), changes.clone(), Rc::clone(&view));
        Stateful {
            changes,
            build: Cell::new(Some(Box::new(move || full(&c, usize::MAX)))),
            snapshots: OnceCell::new(),
            limited: Some(Box::new(move |n| view(&limited, n))),
        }
    }
}

/// The snapshot views of one stateful operator's keyed state (`update_state_by_key`,
/// `map_with_state`).
///
/// Each view built ([`Stateful`]'s full view, or a `print(n)`'s first `n + 1` records of each
/// partition) registers here at build time. After every batch the operator
/// [`offer`](StateViews::offer)s its state, and each view takes a copy of what it shows. The view's
/// operator, downstream of the stateful operator's changes on the same worker, hands that copy
/// on once its input has passed the batch (so the copy is always there by then: the stateful
/// operator made it before it let go of the batch). With no view built, nothing is copied; with
/// one, nothing outlives its batch: the views never hold a second copy of the state.
pub(crate) struct StateViews<K, V> {
    /// Per view: the most records of each partition it shows, and the copies taken and not yet
    /// handed on, by batch.
    views: Vec<(usize, VecDeque<(u64, Vec<Part<(K, V)>>)>)>,
}

impl<K: Clone, V: Clone> StateViews<K, V> {
    /// Views of an operator that has none yet.
    pub(crate) fn shared() -> Rc<RefCell<Self>> {
        Rc::new(RefCell::new(StateViews { views: Vec::new() }))
    }

    /// After batch `t`: each view copies the first records of every non-empty partition of
    /// `state` (partition index, its map), in the map's order.
    pub(crate) fn offer<'m, S: 'm>(
        &mut self,
        t: u64,
        state: impl Iterator<Item = (u32, &'m std::collections::HashMap<K, V, S>)> + Clone,
    ) where
        K: 'm,
        V: 'm,
    {
        for (limit, ready) in &mut self.views {
            let parts = state
                .clone()
                .filter(|(_, map)| !map.is_empty())
                .map(|(q, map)| {
                    let records = map
                        .iter()
                        .take(*limit)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    Part::new(PartitionId::new(q), records)
                })
                .collect();
            ready.push_back((t, parts));
        }
    }
}

/// A view of an operator's state (see [`StateViews`]): at every batch, at most `limit` records
/// of each of its partitions.
fn state_view<'s, K: Key, V: Data>(
    changes: &DStream<'s, ((K, V), isize)>,
    views: &Rc<RefCell<StateViews<K, V>>>,
    limit: usize,
) -> DStream<'s, (K, V)> {
    let index = {
        let mut views = views.borrow_mut();
        views.views.push((limit, VecDeque::new()));
        views.views.len() - 1
    };
    let views = Rc::clone(views);
    let stream = batch_fold_core(
        changes.stream.clone(),
        changes.ticks.clone(),
        Pipeline,
        Pipeline,
        &changes.ctx.name("StateView"),
        true,
        || (),
        // The changes only say when the operator is done with a batch.
        |_: &mut (), data: &mut Vec<Part<((K, V), isize)>>| data.clear(),
        move |t, (), out| {
            let mut views = views.borrow_mut();
            let ready = &mut views.views[index].1;
            while let Some((at, parts)) = ready.pop_front() {
                if at == t {
                    out.extend(parts);
                    break;
                }
                debug_assert!(
                    at < t,
                    "a state view's copy of batch {at} outlived batch {t}"
                );
            }
        },
    );
    changes.derive(stream)
}

impl<'s, T: Data> Deref for Stateful<'s, T> {
    type Target = DStream<'s, T>;
    fn deref(&self) -> &DStream<'s, T> {
        self.snapshots.get_or_init(|| match self.build.take() {
            Some(build) => build(),
            None => self.changes.map(|(t, _)| t).filter(|_| false),
        })
    }
}

/// When a window's snapshot is emitted: at its slide times, `zero + k × slide_ms`. (A keyed
/// state's views emit at every batch; see [`StateViews`].)
#[derive(Clone, Copy, Debug)]
pub(crate) struct Every {
    pub(crate) zero: u64,
    pub(crate) slide_ms: u64,
}

impl Every {
    pub(crate) fn includes(self, t: u64) -> bool {
        t >= self.zero && (t - self.zero).is_multiple_of(self.slide_ms)
    }
}

/// Spark's view of keyed upserts: keeps the current value of every key from `changes`
/// (`-old`, `+new`; at most one of each per key and batch; `0` for state restored from a
/// checkpoint, in place before the batch) and emits all `(key, value)` pairs at every batch
/// `every` includes, partition by partition. Runs where the changes are (keys stay in their
/// partitions). At most `limit` records of each partition (`usize::MAX`: all), the first ones
/// of the full view's order.
pub(crate) fn upsert_snapshots<'s, K: Key, V: Data + PartialEq>(
    changes: &DStream<'s, ((K, V), isize)>,
    every: Every,
    limit: usize,
) -> DStream<'s, (K, V)> {
    let mut current: BTreeMap<PartitionId, FixedMap<K, V>> = BTreeMap::new();
    let op_name = changes.ctx.name("snapshot");
    let runtime = changes.ctx.runtime.clone();
    let stream = batch_fold_core(
        changes.stream.clone(),
        changes.ticks.clone(),
        Pipeline,
        Pipeline,
        &op_name.clone(),
        true,
        Vec::new,
        |acc: &mut Vec<Part<((K, V), isize)>>, data: &mut Vec<Part<((K, V), isize)>>| {
            acc.append(data)
        },
        move |t, chunks, out| {
            for (id, updates) in by_partition(chunks) {
                let current = current.entry(id).or_default();
                for ((k, v), d) in &updates {
                    if *d == 0 {
                        current.insert(k.clone(), v.clone());
                    }
                }
                // Retractions first: a batch may carry `+new` before `-old` for the same key.
                for ((k, v), d) in &updates {
                    if *d < 0 && current.get(k) == Some(v) {
                        current.remove(k);
                    }
                }
                for ((k, v), d) in updates {
                    if d > 0 {
                        current.insert(k, v);
                    }
                }
                shrink_if_sparse(current);
            }
            current.retain(|_, m| !m.is_empty());
            let keys = current.values().map(|m| m.len()).sum();
            runtime.report_state(t, crate::listener::StateSize::of::<K, V>(&op_name, keys));
            if every.includes(t) {
                for (id, map) in &current {
                    let records = map
                        .iter()
                        .take(limit)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    out.push(Part::new(id.clone(), records));
                }
            }
        },
    );
    changes.derive(stream)
}

/// Gives memory back when a map has emptied out (state removed, keys timed out).
pub(crate) fn shrink_if_sparse<K: Hash + Eq, V, S: std::hash::BuildHasher>(
    map: &mut std::collections::HashMap<K, V, S>,
) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(keys: std::ops::Range<u32>) -> FixedMap<u32, u64> {
        keys.map(|k| (k, u64::from(k) * 10)).collect()
    }

    #[test]
    fn without_a_view_nothing_is_copied_and_each_view_takes_what_it_shows() {
        let views = StateViews::<u32, u64>::shared();
        let (a, b) = (state(0..5), state(5..105));
        let empty = FixedMap::default();
        let partitions = [(0u32, &a), (1, &b), (2, &empty)];
        views.borrow_mut().offer(1000, partitions.iter().copied());
        assert!(views.borrow().views.is_empty());

        views.borrow_mut().views.push((usize::MAX, VecDeque::new()));
        views.borrow_mut().views.push((3, VecDeque::new()));
        views.borrow_mut().offer(2000, partitions.iter().copied());
        let views = views.borrow();
        let (full, limited) = (&views.views[0].1, &views.views[1].1);
        // Every record of every non-empty partition, and at most three of each.
        let sizes = |ready: &VecDeque<(u64, Vec<Part<(u32, u64)>>)>| -> Vec<(u64, u64, usize)> {
            ready
                .iter()
                .flat_map(|(t, parts)| {
                    parts
                        .iter()
                        .map(move |p| (*t, p.id.index(), p.records.len()))
                })
                .collect()
        };
        assert_eq!(sizes(full), vec![(2000, 0, 5), (2000, 1, 100)]);
        assert_eq!(sizes(limited), vec![(2000, 0, 3), (2000, 1, 3)]);
        let mut copied: Vec<(u32, u64)> =
            full[0].1.iter().flat_map(|p| p.records.clone()).collect();
        copied.sort_unstable();
        assert_eq!(
            copied,
            (0..105).map(|k| (k, u64::from(k) * 10)).collect::<Vec<_>>()
        );
    }
}
