//! Between DStreams and differential dataflow collections.
//!
//! A DStream record of batch `t` is the update `(record, t, +1)`; a change stream
//! `DStream<(T, isize)>` holds `(T, diff)` at the batch where the change takes effect. DD
//! operators such as `delay` move an update's data time but keep its message at the old
//! capability, so `retime` re-sends every update at its own data time before per-batch
//! operators see it.

use differential_dataflow::VecCollection;
use differential_dataflow::collection::AsCollection;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::partition::{Part, PartitionId, Parts, shuffle};
use super::{DStream, Data, Key};
use crate::spark_hash::Partitioner;

/// Keyed changes out of differential (on whichever worker its hash chose) into `n` hash
/// partitions of their keys; within a partition, a batch's changes are sorted, so the result is
/// the same on any number of workers.
pub(crate) fn keyed_changes_to_parts<'s, K: Key + Ord, V: Data + Ord>(
    changes: StreamVec<'s, u64, ((K, V), isize)>,
    ticks: StreamVec<'s, u64, u64>,
    n: usize,
    partitioner: Partitioner,
    name: &str,
) -> Parts<'s, ((K, V), isize)> {
    let index = changes.scope().index() as u32;
    let chunks = changes.unary(Pipeline, "AsChunks", move |_, _| {
        move |input, output| {
            input.for_each(|cap, updates| {
                let records = std::mem::take(updates);
                output
                    .session(&cap)
                    .give(Part::new(PartitionId::new(index), records));
            });
        }
    });
    shuffle(
        chunks,
        ticks,
        n,
        name,
        move |((k, _), _): &((K, V), isize)| partitioner.partition(k, n),
        |_t, _q, mut records| {
            records.sort();
            records
        },
    )
}

/// Re-sends each update `(d, t, r)` at time `t` as `(d, r)`.
pub(crate) fn retime<'s, D: Data>(
    coll: VecCollection<'s, u64, D, isize>,
) -> StreamVec<'s, u64, (D, isize)> {
    coll.inner.unary(Pipeline, "Retime", |_, _| {
        let mut by_time: std::collections::BTreeMap<u64, Vec<(D, isize)>> = Default::default();
        move |input, output| {
            input.for_each(|cap, updates| {
                for (d, t, r) in updates.drain(..) {
                    by_time.entry(t).or_default().push((d, r));
                }
                for (t, mut batch) in std::mem::take(&mut by_time) {
                    output
                        .session(&cap.delayed(&t, 0))
                        .give_container(&mut batch);
                }
            });
        }
    })
}

impl<'s, T: Data> DStream<'s, T> {
    /// This stream as a differential collection: each record of batch `t` is `(record, t, +1)`.
    ///
    /// # Examples
    ///
    /// ```
    /// sluice::testing::run_batches(vec![vec!['a', 'b', 'a']], |s| {
    ///     // Each record is an insertion at its batch time: differential counts by key.
    ///     s.to_collection().count().inspect(|((w, n), _t, d)| {
    ///         assert!(*d == 1 && ((*w == 'a' && *n == 2) || (*w == 'b' && *n == 1)));
    ///     });
    ///     s.print(1);
    /// })?;
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn to_collection(&self) -> VecCollection<'s, u64, T, isize> {
        self.stream
            .clone()
            .unary(Pipeline, "ToCollection", |_, _| {
                move |input, output| {
                    input.for_each(|cap, chunks| {
                        let Some(&t) = cap.least() else { return };
                        let mut session = output.session(&cap);
                        for part in chunks.drain(..) {
                            for r in part.records {
                                session.give((r, t, 1isize));
                            }
                        }
                    });
                }
            })
            .as_collection()
    }
}

impl<'s, T: Data> DStream<'s, (T, isize)> {
    /// A change stream (`(record, diff)` per batch) as a differential collection.
    ///
    /// # Examples
    ///
    /// ```
    /// sluice::testing::run_batches(vec![vec![('x', 1isize), ('x', -1), ('y', 1)]], |s| {
    ///     // (record, diff) pairs become a collection: x cancels out, y remains.
    ///     s.changes_to_collection().consolidate().inspect(|(r, _t, d)| assert_eq!((*r, *d), ('y', 1)));
    ///     s.print(1);
    /// })?;
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn changes_to_collection(&self) -> VecCollection<'s, u64, T, isize> {
        self.stream
            .clone()
            .unary(Pipeline, "ChangesToCollection", |_, _| {
                move |input, output| {
                    input.for_each(|cap, chunks| {
                        let Some(&t) = cap.least() else { return };
                        let mut session = output.session(&cap);
                        for part in chunks.drain(..) {
                            for (r, d) in part.records {
                                session.give((r, t, d));
                            }
                        }
                    });
                }
            })
            .as_collection()
    }
}
