//! `queue_stream`: one queued batch per interval (Spark's `queueStream` with `oneAtATime`).
//!
//! The queue lives outside the job (push into it while the job runs). Batch `t` takes the next
//! queued vector, or nothing if the queue is empty, and slices it into `n` partitions (the
//! job's default parallelism, or [`BatchQueue::partitions`]) exactly as Spark's
//! `sc.parallelize(seq, n)` does: slice `i` is records `[i·len/n, (i+1)·len/n)`. Each worker
//! takes the slices it runs. In a multi-process job every process builds the same queue.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::{BatchOut, BatchReader, BatchSlot};

struct QueueState<T> {
    pending: VecDeque<Vec<T>>,
    /// Vectors taken from the queue since it was made (the position of `pending`'s front).
    taken: u64,
    /// Batches already taken, until every local worker has read its share: the records, the
    /// readers still to read them, and the vectors taken as `[from, until)`.
    assigned: BTreeMap<u64, (Vec<T>, usize, (u64, u64))>,
    one_at_a_time: bool,
    /// Slices per batch; `None`: the job's default parallelism.
    partitions: Option<usize>,
}

impl<T> QueueState<T> {
    /// Takes `n` vectors (all that are queued for `None`), as one batch.
    fn take(&mut self, n: Option<u64>) -> (Vec<T>, (u64, u64)) {
        let from = self.taken;
        let n = n.map_or(self.pending.len(), |n| (n as usize).min(self.pending.len()));
        let batch: Vec<T> = self.pending.drain(..n).flatten().collect();
        self.taken += n as u64;
        (batch, (from, self.taken))
    }
}

/// A queue of batches for [`Job::queue_stream`](crate::Job::queue_stream); clones share it.
///
/// # Examples
///
/// ```
/// let queue = sluice::source::BatchQueue::new();
/// queue.push(vec![1, 2, 3]);
/// queue.push(vec![4]);
/// assert_eq!(queue.len(), 2);
/// ```
pub struct BatchQueue<T> {
    state: Arc<Mutex<QueueState<T>>>,
}

impl<T> Clone for BatchQueue<T> {
    fn clone(&self) -> Self {
        BatchQueue {
            state: Arc::clone(&self.state),
        }
    }
}

impl<T> Default for BatchQueue<T> {
    fn default() -> Self {
        BatchQueue {
            state: Arc::new(Mutex::new(QueueState {
                pending: VecDeque::new(),
                taken: 0,
                assigned: BTreeMap::new(),
                one_at_a_time: true,
                partitions: None,
            })),
        }
    }
}

impl<T> BatchQueue<T> {
    /// An empty queue that hands out one batch per interval.
    pub fn new() -> Self {
        Self::default()
    }
    /// A queue holding these batches, in order.
    pub fn from_batches<I, B>(batches: I) -> Self
    where
        I: IntoIterator<Item = B>,
        B: IntoIterator<Item = T>,
    {
        let q = Self::new();
        for b in batches {
            q.push(b.into_iter().collect());
        }
        q
    }
    /// With `false`, each batch takes everything queued so far (Spark's `oneAtATime = false`).
    pub fn one_at_a_time(self, yes: bool) -> Self {
        self.lock().one_at_a_time = yes;
        self
    }
    /// Slices every batch into `n` partitions (Spark's `parallelize(seq, n)`, as Spark's test
    /// input streams take `numPartitions`) instead of the job's default parallelism.
    pub fn partitions(self, n: usize) -> Self {
        self.lock().partitions = Some(n.max(1));
        self
    }
    /// Queues one batch.
    pub fn push(&self, batch: Vec<T>) {
        self.lock().pending.push_back(batch);
    }
    /// Batches not yet taken.
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }
    /// True when no batch is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads a [`BatchQueue`]. Replayable: a batch's plan is which queued vectors it took (by
/// position since the queue was made), so a job restarted from a checkpoint with a queue holding
/// the same vectors replays the same batches and goes on after them.
pub(crate) struct QueueReader<T> {
    pub(crate) queue: BatchQueue<T>,
    pub(crate) local_workers: usize,
    pub(crate) parallelism: usize,
    pub(crate) replay: BTreeMap<u64, (u64, u64)>,
    pub(crate) last: (u64, u64),
}

impl<T> QueueReader<T> {
    pub(crate) fn new(queue: BatchQueue<T>, local_workers: usize, parallelism: usize) -> Self {
        QueueReader {
            queue,
            local_workers,
            parallelism,
            replay: BTreeMap::new(),
            last: (0, 0),
        }
    }
}

/// Spark's `ParallelCollectionRDD.slice`: the bounds of slice `i` of `n` over `len` records.
fn slice_bounds(len: usize, i: usize, n: usize) -> (usize, usize) {
    let at = |j: usize| ((j as u128 * len as u128) / n as u128) as usize;
    (at(i), at(i + 1))
}

impl<T: Clone + 'static> BatchReader<T> for QueueReader<T> {
    fn name(&self) -> String {
        "queue".into()
    }

    fn read_batch(&mut self, slot: &BatchSlot, out: &mut BatchOut<T>) -> u64 {
        let t = slot.time.millis();
        let mut state = self.queue.lock();
        if !state.assigned.contains_key(&t) {
            let n = match self.replay.get(&t) {
                Some((from, until)) => Some(until - from),
                None if state.one_at_a_time => Some(1),
                None => None,
            };
            let (taken, range) = state.take(n);
            state.assigned.insert(t, (taken, self.local_workers, range));
        }
        self.replay.remove(&t);
        let n = state.partitions.unwrap_or(self.parallelism).max(1);
        let Some((batch, readers, range)) = state.assigned.get_mut(&t) else {
            return 0;
        };
        self.last = *range;
        for i in (0..n).filter(|i| i % slot.peers == slot.worker) {
            let (from, until) = slice_bounds(batch.len(), i, n);
            out.partition(i as u32)
                .extend(batch[from..until].iter().cloned());
        }
        *readers -= 1;
        if *readers == 0 {
            state.assigned.remove(&t);
        }
        0
    }

    fn plan(&mut self, _slot: &BatchSlot) -> Option<Vec<u8>> {
        crate::checkpoint::codec::encode(&self.last).ok()
    }

    fn recover(&mut self, recovery: crate::checkpoint::SourceRecovery) -> crate::Result<()> {
        let mut position = None;
        let mut restored_plan = false;
        for (t, plans) in &recovery.plans {
            let Some(Ok(range)) = plans
                .first()
                .map(|p| crate::checkpoint::codec::decode::<(u64, u64)>(p))
            else {
                continue;
            };
            if Some(*t) == recovery.after {
                position = Some(range.1);
                restored_plan = true;
            } else {
                position.get_or_insert(range.0);
                self.replay.insert(*t, range);
            }
        }
        if recovery.after.is_some() && !restored_plan {
            return Err(recovery.missing_plan("queue stream", "queued batches"));
        }
        // Every local worker recovers; the first one moves the shared queue.
        let mut state = self.queue.lock();
        let target = position.unwrap_or(0);
        while state.taken < target && !state.pending.is_empty() {
            state.pending.pop_front();
            state.taken += 1;
        }
        Ok(())
    }
}
