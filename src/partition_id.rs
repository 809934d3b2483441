//! The identity of a partition of a batch, [`PartitionId`]: a leaf that sources, shuffles,
//! dead letters and sinks all name partitions by (re-exported as
//! [`dstream::partition::PartitionId`](crate::dstream::partition::PartitionId)).

use std::fmt;

use smallvec::SmallVec;

/// The identity of one partition of a batch: a path of indices, ordered lexicographically.
///
/// # Examples
///
/// ```
/// use sluice::dstream::partition::PartitionId;
/// let p = PartitionId::new(3);
/// assert_eq!((p.index(), p.worker(2)), (3, 1));
/// assert!(PartitionId::new(0).under(1) > PartitionId::new(7).under(0)); // branch 1 after branch 0
/// assert_eq!(PartitionId::new(2).under(1).to_string(), "1.2");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct PartitionId(SmallVec<[u64; 2]>);

impl PartitionId {
    /// Partition `index` of a source or a shuffle.
    pub fn new(index: u32) -> Self {
        PartitionId(smallvec::smallvec![u64::from(index)])
    }

    /// A partition with a path of its own (a source whose partitions are not `0..n`, such as
    /// Kafka's `[topic hash, slot]`); it runs on worker `path.last() % workers`.
    pub fn from_path(path: &[u64]) -> Self {
        PartitionId(SmallVec::from_slice(path))
    }

    /// This partition placed under `outer` (a union's branch, a window's batch): it sorts with
    /// the partitions under `outer`, and runs on the same worker.
    pub fn under(&self, outer: u32) -> Self {
        let mut path = SmallVec::with_capacity(self.0.len() + 1);
        path.push(u64::from(outer));
        path.extend_from_slice(&self.0);
        PartitionId(path)
    }

    /// The innermost index: the source's or shuffle's partition number.
    pub fn index(&self) -> u64 {
        self.0.last().copied().unwrap_or(0)
    }

    /// The whole path, outermost first.
    pub fn path(&self) -> &[u64] {
        &self.0
    }

    /// The worker (of `peers`) that runs this partition.
    pub fn worker(&self, peers: usize) -> usize {
        (self.index() % peers.max(1) as u64) as usize
    }

    /// What timely's exchange routes on (it takes it modulo the number of workers).
    pub(crate) fn placement(&self) -> u64 {
        self.index()
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, x) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartitionId({self})")
    }
}
