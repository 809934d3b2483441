//! Placing chunks on the worker of their partition, as soon as they are sent.
//!
//! A source that reads on one worker (a receiver) hands the chunks of other workers'
//! partitions to [`place`], which routes each to its worker through a timely exchange whose
//! buffer ([`EachChunk`]) lets every chunk leave at once.

use timely::dataflow::operators::generic::Operator;

use super::partition::{Part, Parts};

/// Sends every chunk to the worker of its partition (after a source that reads elsewhere,
/// such as a receiver), each chunk as soon as it is sent: see [`EachChunk`].
pub(crate) fn place<'s, T: crate::dstream::Data>(parts: Parts<'s, T>) -> Parts<'s, T> {
    use timely::dataflow::channels::pact::ExchangeCore;
    let pact = ExchangeCore::<EachChunk<Part<T>>, _>::new_core(|p: &Part<T>| p.id.placement());
    parts.unary(pact, "Place", |_, _| {
        |input, output| {
            input.for_each(|cap, chunks| {
                output.session(&cap).give_container(chunks);
            });
        }
    })
}

/// The exchange's buffer for [`place`]: every chunk leaves as a message of its own, at once.
///
/// Timely's default buffer holds a destination's items until about 8 KiB of them are there or
/// the sender's input closes its batch. A chunk is a few dozen bytes that own thousands of
/// records, so a receiver's blocks for other workers stayed on the receiving worker until it had
/// sent — and, stepping in between, processed — its whole batch; the other workers then started
/// late, one after the other (`-w 2` ran a costly stateless job no faster than `-w 1`). Sent one
/// by one, every worker works on its blocks while the next are being sent.
pub(crate) struct EachChunk<T> {
    ready: std::collections::VecDeque<Vec<T>>,
    /// The message handed out last (its buffer is not reused: chunks are few).
    out: Vec<T>,
}

impl<T> Default for EachChunk<T> {
    fn default() -> Self {
        EachChunk {
            ready: Default::default(),
            out: Vec::new(),
        }
    }
}

impl<T> timely::container::PushInto<T> for EachChunk<T> {
    fn push_into(&mut self, item: T) {
        self.ready.push_back(vec![item]);
    }
}

impl<T: Clone + 'static> timely::container::ContainerBuilder for EachChunk<T> {
    type Container = Vec<T>;

    fn extract(&mut self) -> Option<&mut Vec<T>> {
        self.out = self.ready.pop_front()?;
        Some(&mut self.out)
    }

    fn finish(&mut self) -> Option<&mut Vec<T>> {
        self.extract()
    }
}

// Every item pushed leaves in exactly one message.
impl<T: Clone + 'static> timely::container::LengthPreservingContainerBuilder for EachChunk<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dstream::partition::PartitionId;

    /// A chunk placed on another worker reaches it while the sending worker's input is still
    /// open (a receiver's batch still entering): with timely's default exchange buffer it waited
    /// for the input to advance.
    #[test]
    fn a_placed_chunk_reaches_its_worker_before_the_batch_closes() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::{Duration, Instant};
        use timely::dataflow::InputHandleVec;
        use timely::dataflow::operators::Inspect;
        use timely::dataflow::operators::vec::Input as _;

        let arrived = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&arrived);
        let early = timely::execute(timely::Config::process(2), move |worker| {
            let index = worker.index();
            let mut input: InputHandleVec<u64, Part<u32>> = InputHandleVec::new();
            let arrived = Arc::clone(&seen);
            worker.dataflow::<u64, _, _>(|scope| {
                place(scope.input_from(&mut input)).inspect(move |part: &Part<u32>| {
                    assert_eq!(part.id.index(), 1, "only partition 1's chunk is sent");
                    arrived.store(true, Ordering::SeqCst);
                });
            });
            if index == 0 {
                input.send(Part::new(PartitionId::new(1), vec![7]));
                input.flush();
            }
            // Both workers step with the input still open, until the chunk is there.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !seen.load(Ordering::SeqCst) && Instant::now() < deadline {
                worker.step();
            }
            let early = seen.load(Ordering::SeqCst);
            drop(input);
            while worker.step() {}
            early
        })
        .expect("timely runs")
        .join()
        .into_iter()
        .all(|r| r.unwrap_or(false));
        assert!(early, "the chunk waited for the input to close");
        assert!(arrived.load(Ordering::SeqCst));
    }
}
