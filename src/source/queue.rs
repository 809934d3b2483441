//! `queue_stream`: one queued batch per interval (Spark's `queueStream` with `oneAtATime`).
//!
//! The queue lives outside the job (push into it while the job runs). Batch `t` takes the next
//! queued vector, or nothing if the queue is empty. The records of a vector are spread over the
//! workers (record `j` goes to worker `j % workers`), so with one worker the order is kept. In a
//! multi-process job every process builds the same queue; each takes its own workers' share.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::{BatchReader, BatchSlot};

struct QueueState<T> {
    pending: VecDeque<Vec<T>>,
    /// Batches already taken, until every local worker has read its share.
    assigned: BTreeMap<u64, (Vec<T>, usize)>,
    one_at_a_time: bool,
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
                assigned: BTreeMap::new(),
                one_at_a_time: true,
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

pub(crate) struct QueueReader<T> {
    pub(crate) queue: BatchQueue<T>,
    pub(crate) local_workers: usize,
}

impl<T: Clone + 'static> BatchReader<T> for QueueReader<T> {
    fn name(&self) -> String {
        "queue".into()
    }

    fn read_batch(&mut self, slot: &BatchSlot, out: &mut Vec<T>) -> u64 {
        let t = slot.time.millis();
        let mut state = self.queue.lock();
        if !state.assigned.contains_key(&t) {
            let taken: Vec<T> = if state.one_at_a_time {
                state.pending.pop_front().unwrap_or_default()
            } else {
                state.pending.drain(..).flatten().collect()
            };
            state.assigned.insert(t, (taken, self.local_workers));
        }
        let Some((batch, readers)) = state.assigned.get_mut(&t) else {
            return 0;
        };
        out.extend(
            batch
                .iter()
                .enumerate()
                .filter(|(j, _)| j % slot.peers == slot.worker)
                .map(|(_, x)| x.clone()),
        );
        *readers -= 1;
        if *readers == 0 {
            state.assigned.remove(&t);
        }
        0
    }
}
