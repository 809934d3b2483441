//! `cogroup` and the `join` family: batch `t` of one pair stream with batch `t` of another.
//!
//! Both sides are routed by key to the same worker and grouped there; the joins are cogroup
//! followed by Spark's per-key rules (inner: every pair of values; left outer: every left value,
//! with `None` when the key has no right value; right and full outer likewise).

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::core::Concat;
use timely::dataflow::operators::vec::Map;

use super::batch_op::batch_fold;
use super::pair::route;
use super::stateless::Either;
use super::{DStream, Data, Key};

impl<'s, K: Key, V: Data> DStream<'s, (K, V)> {
    /// For each key present in batch `t` of either stream, its values on both sides (Spark's
    /// `cogroup`).
    ///
    /// # Examples
    ///
    /// ```
    /// let input = vec![vec![('a', 1u64), ('b', 2), ('a', 3), ('c', 4)]];
    /// let mut out = sluice::testing::collect_batches(input, |s| {
    ///     let left = s.filter(|(_, v)| *v % 2 == 1);   // (a,1) (a,3)
    ///     let right = s.filter(|(_, v)| *v % 2 == 0);  // (b,2) (c,4)
    ///     left.map(|(k, v)| (k, v)).cogroup(&right.map(|(k, v)| if k == 'b' { ('a', v) } else { (k, v) }))
    /// })?;
    /// out[0].sort();
    /// assert_eq!(out[0], vec![('a', (vec![1, 3], vec![2])), ('c', (vec![], vec![4]))]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn cogroup<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
    ) -> DStream<'s, (K, (Vec<V>, Vec<W>))> {
        let both = self
            .stream
            .clone()
            .map(|(k, v)| (k, Either::Left(v)))
            .concat(other.stream.clone().map(|(k, w)| (k, Either::Right(w))));
        let stream = batch_fold(
            both,
            self.ticks.clone(),
            Exchange::new(|(k, _): &(K, Either<V, W>)| route(k)),
            Pipeline,
            &self.ctx.name("Cogroup"),
            foldhash::HashMap::<K, (Vec<V>, Vec<W>)>::default,
            |groups, data: &mut Vec<(K, Either<V, W>)>| {
                for (k, x) in data.drain(..) {
                    let group = groups.entry(k).or_default();
                    match x {
                        Either::Left(v) => group.0.push(v),
                        Either::Right(w) => group.1.push(w),
                    }
                }
            },
            |_t, groups, out| out.extend(groups),
        );
        self.derive(stream)
    }

    /// Pairs every value of a key with every value of the same key in the other stream, batch
    /// by batch (Spark's `join`).
    ///
    /// # Examples
    ///
    /// ```
    /// let input = vec![vec![('a', 1u64), ('b', 2), ('a', 3), ('c', 4)]];
    /// let mut out = sluice::testing::collect_batches(input, |s| {
    ///     let left = s.filter(|(_, v)| *v % 2 == 1);   // (a,1) (a,3)
    ///     let right = s.filter(|(_, v)| *v % 2 == 0);  // (b,2) (c,4)
    ///     left.map(|(k, v)| (k, v)).join(&right.map(|(k, v)| if k == 'b' { ('a', v) } else { (k, v) }))
    /// })?;
    /// out[0].sort();
    /// assert_eq!(out[0], vec![('a', (1, 2)), ('a', (3, 2))]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn join<W: Data>(&self, other: &DStream<'s, (K, W)>) -> DStream<'s, (K, (V, W))> {
        self.cogroup(other).flat_map(|(k, (vs, ws))| {
            let mut out = Vec::with_capacity(vs.len() * ws.len());
            for v in &vs {
                for w in &ws {
                    out.push((k.clone(), (v.clone(), w.clone())));
                }
            }
            out
        })
    }

    /// Every value of this stream, with each matching value of the other or `None` (Spark's
    /// `leftOuterJoin`).
    ///
    /// # Examples
    ///
    /// ```
    /// let input = vec![vec![('a', 1u64), ('b', 2), ('a', 3), ('c', 4)]];
    /// let mut out = sluice::testing::collect_batches(input, |s| {
    ///     let left = s.filter(|(_, v)| *v % 2 == 1);   // (a,1) (a,3)
    ///     let right = s.filter(|(_, v)| *v % 2 == 0);  // (b,2) (c,4)
    ///     left.map(|(k, v)| (k, v)).left_outer_join(&right.map(|(k, v)| if k == 'b' { ('a', v) } else { (k, v) }))
    /// })?;
    /// out[0].sort();
    /// assert_eq!(out[0], vec![('a', (1, Some(2))), ('a', (3, Some(2)))]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn left_outer_join<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
    ) -> DStream<'s, (K, (V, Option<W>))> {
        self.cogroup(other).flat_map(|(k, (vs, ws))| {
            let mut out = Vec::new();
            for v in vs {
                if ws.is_empty() {
                    out.push((k.clone(), (v, None)));
                } else {
                    out.extend(ws.iter().map(|w| (k.clone(), (v.clone(), Some(w.clone())))));
                }
            }
            out
        })
    }

    /// Every value of the other stream, with each matching value of this one or `None` (Spark's
    /// `rightOuterJoin`).
    ///
    /// # Examples
    ///
    /// ```
    /// let input = vec![vec![('a', 1u64), ('b', 2), ('a', 3), ('c', 4)]];
    /// let mut out = sluice::testing::collect_batches(input, |s| {
    ///     let left = s.filter(|(_, v)| *v % 2 == 1);   // (a,1) (a,3)
    ///     let right = s.filter(|(_, v)| *v % 2 == 0);  // (b,2) (c,4)
    ///     left.map(|(k, v)| (k, v)).right_outer_join(&right.map(|(k, v)| if k == 'b' { ('a', v) } else { (k, v) }))
    /// })?;
    /// out[0].sort();
    /// assert_eq!(out[0], vec![('a', (Some(1), 2)), ('a', (Some(3), 2)), ('c', (None, 4))]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn right_outer_join<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
    ) -> DStream<'s, (K, (Option<V>, W))> {
        self.cogroup(other).flat_map(|(k, (vs, ws))| {
            let mut out = Vec::new();
            for w in ws {
                if vs.is_empty() {
                    out.push((k.clone(), (None, w)));
                } else {
                    out.extend(vs.iter().map(|v| (k.clone(), (Some(v.clone()), w.clone()))));
                }
            }
            out
        })
    }

    /// Every value of either stream, paired where the key matches (Spark's `fullOuterJoin`).
    ///
    /// # Examples
    ///
    /// ```
    /// let input = vec![vec![('a', 1u64), ('b', 2), ('a', 3), ('c', 4)]];
    /// let mut out = sluice::testing::collect_batches(input, |s| {
    ///     let left = s.filter(|(_, v)| *v % 2 == 1);   // (a,1) (a,3)
    ///     let right = s.filter(|(_, v)| *v % 2 == 0);  // (b,2) (c,4)
    ///     left.map(|(k, v)| (k, v)).full_outer_join(&right.map(|(k, v)| if k == 'b' { ('a', v) } else { (k, v) }))
    /// })?;
    /// out[0].sort();
    /// assert_eq!(out[0], vec![('a', (Some(1), Some(2))), ('a', (Some(3), Some(2))), ('c', (None, Some(4)))]);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn full_outer_join<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
    ) -> DStream<'s, (K, (Option<V>, Option<W>))> {
        self.cogroup(other).flat_map(|(k, (vs, ws))| {
            let mut out = Vec::new();
            match (vs.is_empty(), ws.is_empty()) {
                (false, true) => out.extend(vs.into_iter().map(|v| (k.clone(), (Some(v), None)))),
                (true, false) => out.extend(ws.into_iter().map(|w| (k.clone(), (None, Some(w))))),
                _ => {
                    for v in &vs {
                        for w in &ws {
                            out.push((k.clone(), (Some(v.clone()), Some(w.clone()))));
                        }
                    }
                }
            }
            out
        })
    }
}
