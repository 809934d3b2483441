//! The per-batch primitive every batch-scoped operator is built on.
//!
//! [`batch_fold`] reads a data stream and the job's **batch ticks** (one record `t` per worker per
//! batch it cuts). It folds the records of batch `t` into an accumulator and, once both inputs'
//! frontiers have passed `t`, calls `finish(t, acc)` and emits what it produced at time `t`.
//!
//! Invariants:
//! - `finish` is called exactly once for every batch that exists on this worker (a tick or a
//!   record arrived for it), **including batches with no records**, in increasing batch order,
//!   even when the frontier jumps over several batches at once.
//! - The operator holds a capability for `t` until `finish(t)` has run, so anything downstream
//!   (and a probe behind an output) sees `t` complete only after it.

use std::collections::BTreeMap;

use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

/// Folds each batch of `data` into an `A` and turns it into outputs once the batch is complete.
///
/// `data_pact` routes the records (pipeline, by key, or all to worker 0); `tick_pact` must route
/// ticks the same way so that a worker knows about every batch it may receive records for.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_fold<'s, T, U, A, P, Q, I, F, G>(
    data: StreamVec<'s, u64, T>,
    ticks: StreamVec<'s, u64, u64>,
    data_pact: P,
    tick_pact: Q,
    name: &str,
    init: I,
    absorb: F,
    finish: G,
) -> StreamVec<'s, u64, U>
where
    T: 'static,
    U: 'static,
    A: 'static,
    P: ParallelizationContract<u64, Vec<T>>,
    Q: ParallelizationContract<u64, Vec<u64>>,
    I: FnMut() -> A + 'static,
    F: FnMut(&mut A, &mut Vec<T>) + 'static,
    G: FnMut(u64, A, &mut Vec<U>) + 'static,
{
    batch_fold_core(
        data, ticks, data_pact, tick_pact, name, false, init, absorb, finish,
    )
}

/// [`batch_fold`] with `require_tick`: records of a time no worker cut as a batch (retractions
/// a window schedules past the last batch) are dropped instead of folded into a batch of their
/// own.
#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_fold_core<'s, T, U, A, P, Q, I, F, G>(
    data: StreamVec<'s, u64, T>,
    ticks: StreamVec<'s, u64, u64>,
    data_pact: P,
    tick_pact: Q,
    name: &str,
    require_tick: bool,
    mut init: I,
    mut absorb: F,
    mut finish: G,
) -> StreamVec<'s, u64, U>
where
    T: 'static,
    U: 'static,
    A: 'static,
    P: ParallelizationContract<u64, Vec<T>>,
    Q: ParallelizationContract<u64, Vec<u64>>,
    I: FnMut() -> A + 'static,
    F: FnMut(&mut A, &mut Vec<T>) + 'static,
    G: FnMut(u64, A, &mut Vec<U>) + 'static,
{
    data.binary_frontier::<Vec<u64>, timely::container::CapacityContainerBuilder<Vec<U>>, _, _, _, _>(
        ticks,
        data_pact,
        tick_pact,
        name,
        move |_default_cap, _info| {
            let mut pending: BTreeMap<u64, (Capability<u64>, A, bool)> = BTreeMap::new();
            let mut out: Vec<U> = Vec::new();
            move |(input, data_frontier), (tick_input, tick_frontier), output| {
                input.for_each(|cap, records| {
                    // Some timely operators (vec `filter`) forward emptied containers: they hold
                    // no records and must not create a batch.
                    if records.is_empty() {
                        return;
                    }
                    let Some(&t) = cap.least() else {
                        tracing::error!("a message without a batch time reached {}", "batch_fold");
                        return;
                    };
                    let slot = pending
                        .entry(t)
                        .or_insert_with(|| (cap.delayed(&t, 0), init(), false));
                    absorb(&mut slot.1, records);
                });
                tick_input.for_each(|cap, batch_times| {
                    for &t in batch_times.iter() {
                        pending
                            .entry(t)
                            .or_insert_with(|| (cap.delayed(&t, 0), init(), false))
                            .2 = true;
                    }
                    batch_times.clear();
                });
                while let Some(entry) = pending.first_entry() {
                    let t = *entry.key();
                    if data_frontier.less_equal(&t) || tick_frontier.less_equal(&t) {
                        break;
                    }
                    let (cap, acc, ticked) = entry.remove();
                    if require_tick && !ticked {
                        continue;
                    }
                    finish(t, acc, &mut out);
                    if !out.is_empty() {
                        output.session(&cap).give_container(&mut out);
                        out.clear();
                    }
                }
            }
        },
    )
}
