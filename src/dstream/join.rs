//! `cogroup` and the `join` family: batch `t` of one pair stream with batch `t` of another.
//!
//! Both sides are hash-partitioned by key into the same partitions and grouped there; the
//! joins are cogroup followed by Spark's per-key rules (inner: every pair of values; left outer:
//! every left value, with `None` when the key has no right value; right and full outer
//! likewise). Spark's optional number of partitions is given with [`partitioned`](super::partitioned).

use super::partition::{FixedMap, shuffle};
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
        self.cogroup_into(other, None)
    }

    /// [`cogroup`](DStream::cogroup) into `partitions` partitions (Spark's
    /// `cogroup(other, numPartitions)`); `None` for the job's default.
    pub(crate) fn cogroup_into<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
        partitions: Option<usize>,
    ) -> DStream<'s, (K, (Vec<V>, Vec<W>))> {
        let n = self.shuffle_partitions(partitions);
        let partitioner = self.ctx.info.partitioner;
        let stream = shuffle(
            self.tagged_with(other),
            self.ticks.clone(),
            n,
            &self.ctx.name("Cogroup"),
            move |x: &Either<(K, V), (K, W)>| match x {
                Either::Left((k, _)) | Either::Right((k, _)) => partitioner.partition(k, n),
            },
            |_t, _q, records| {
                let mut groups = FixedMap::<K, (Vec<V>, Vec<W>)>::default();
                for x in records {
                    match x {
                        Either::Left((k, v)) => groups.entry(k).or_default().0.push(v),
                        Either::Right((k, w)) => groups.entry(k).or_default().1.push(w),
                    }
                }
                groups.into_iter().collect()
            },
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
        self.join_into(other, None)
    }

    /// [`join`](DStream::join) into `partitions` partitions (Spark's `numPartitions`); `None`
    /// for the job's default.
    pub(crate) fn join_into<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
        partitions: Option<usize>,
    ) -> DStream<'s, (K, (V, W))> {
        self.cogroup_into(other, partitions)
            .flat_map(|(k, (vs, ws))| {
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
        self.left_outer_join_into(other, None)
    }

    /// [`left_outer_join`](DStream::left_outer_join) into `partitions` partitions (Spark's `numPartitions`); `None`
    /// for the job's default.
    pub(crate) fn left_outer_join_into<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
        partitions: Option<usize>,
    ) -> DStream<'s, (K, (V, Option<W>))> {
        self.cogroup_into(other, partitions)
            .flat_map(|(k, (vs, ws))| {
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
        self.right_outer_join_into(other, None)
    }

    /// [`right_outer_join`](DStream::right_outer_join) into `partitions` partitions (Spark's `numPartitions`); `None`
    /// for the job's default.
    pub(crate) fn right_outer_join_into<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
        partitions: Option<usize>,
    ) -> DStream<'s, (K, (Option<V>, W))> {
        self.cogroup_into(other, partitions)
            .flat_map(|(k, (vs, ws))| {
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
        self.full_outer_join_into(other, None)
    }

    /// [`full_outer_join`](DStream::full_outer_join) into `partitions` partitions (Spark's `numPartitions`); `None`
    /// for the job's default.
    pub(crate) fn full_outer_join_into<W: Data>(
        &self,
        other: &DStream<'s, (K, W)>,
        partitions: Option<usize>,
    ) -> DStream<'s, (K, (Option<V>, Option<W>))> {
        self.cogroup_into(other, partitions)
            .flat_map(|(k, (vs, ws))| {
                let mut out = Vec::new();
                match (vs.is_empty(), ws.is_empty()) {
                    (false, true) => {
                        out.extend(vs.into_iter().map(|v| (k.clone(), (Some(v), None))))
                    }
                    (true, false) => {
                        out.extend(ws.into_iter().map(|w| (k.clone(), (None, Some(w)))))
                    }
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
