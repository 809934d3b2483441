//! The keyed-state protocol, written once for both state operators.
//!
//! `update_state_by_key` and `map_with_state` differ only in how one partition folds a batch's
//! records into its keys' state. Everything around that fold is the same, and lives here:
//!
//! 1. **name**: the operator's state is registered under its name (given, or made from the
//!    operator's kind), the name a checkpoint restores it by;
//! 2. **restore or start**: at the first batch of this run each worker's keys enter as
//!    [`StateInput::Restored`] (a checkpoint holds the operator) or [`StateInput::Initial`]
//!    (its share of the user's initial state), before the batch's records;
//! 3. **shuffle**: records go to the worker that owns their key's partition;
//! 4. **apply**: [`KeyedState::apply`] folds each partition's records into that partition's
//!    state, emits the operator's output and logs every change in the snapshot change log;
//! 5. **views**: the state's views (`snapshots`, `state_snapshots`) are offered every
//!    partition's map;
//! 6. **snapshot**: at a snapshot batch the worker's share is saved (its changes since the
//!    last snapshot, or every entry with its aux word), in the background;
//! 7. **report**: the state's size and the snapshot write go to the listeners.
//!
//! Invariants the driver keeps for every operator:
//! - a partition's state lives on the one worker that owns it, and only [`KeyedState::apply`]
//!   changes it;
//! - restored and initial state reach `apply` in the first batch of the run, in the same
//!   partition as the key's records;
//! - the snapshot of batch `t` is taken after `apply` has run for every partition of `t`,
//!   with each key's aux word from [`KeyedState::aux`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::{StateInput, save_state};
use crate::checkpoint::Changelog;
use crate::dstream::partition::{FixedMap, Part, PartitionId, Parts, shuffle_batches};
use crate::dstream::stateful::StateViews;
use crate::dstream::{DStream, Data, Key};
use crate::listener::StateSize;

/// What one batch is to a keyed-state operator.
pub(super) struct Batch {
    /// The batch's time, in milliseconds.
    pub(super) t: u64,
    /// Whether this batch's state is snapshotted.
    pub(super) snapshot_due: bool,
    /// Whether the previous batch's state was.
    pub(super) after_snapshot: bool,
}

/// One keyed-state operator: how a partition folds a batch into its keys' state.
pub(super) trait KeyedState<K, V, S>: 'static {
    /// One partition's state (its keys' states and whatever else the operator keeps per key).
    type Partition: Default + 'static;
    /// What the operator emits per partition and batch.
    type Out: 'static;
    /// Whether each input partition's values of a key cross the shuffle together
    /// ([`StateInput::Values`]) rather than one [`StateInput::Value`] per record.
    const GROUPED: bool;

    /// Folds `records` (start state first, then values in their order) into `part`, logging
    /// each change in `log` (incremental snapshots), and returns the partition's output.
    fn apply(
        &mut self,
        batch: &Batch,
        part: &mut Self::Partition,
        records: Vec<(K, StateInput<V, S>)>,
        log: Option<&mut Changelog>,
    ) -> Vec<Self::Out>;

    /// The keys' states of a partition.
    fn state(part: &Self::Partition) -> &FixedMap<K, S>;

    /// The word a snapshot keeps beside key `k`'s state (see [`StateInput::Restored`]).
    fn aux(part: &Self::Partition, k: &K) -> u64;
}

impl<'s, K: Key, V: Data> DStream<'s, (K, V)> {
    /// The name operator `kind`'s state is kept under: `name`, or one made from `kind`;
    /// registered with the job (two operators may not share a given name).
    pub(super) fn state_name(&self, kind: &str, name: Option<String>) -> String {
        let given = name.is_some();
        let name = name.unwrap_or_else(|| self.ctx.name(kind));
        self.ctx.register_state(&name, given);
        name
    }

    /// Runs `op` over this stream's records, keyed, with its state kept, restored and
    /// snapshotted under `name` (from [`state_name`](Self::state_name)) in `partitions`
    /// partitions (`None`: the default). Returns the operator's output and the state's views.
    pub(super) fn keyed_state<S: Data, Op: KeyedState<K, V, S>>(
        &self,
        name: &str,
        initial: Vec<(K, S)>,
        partitions: Option<usize>,
        mut op: Op,
    ) -> (Parts<'s, Op::Out>, Rc<RefCell<StateViews<K, S>>>) {
        let runtime = self.ctx.runtime.clone();
        let mut store = runtime.state_store(name);
        let n = self.shuffle_partitions(partitions);
        let input = self.with_start_state(name, initial, n, Op::GROUPED);
        let mut states: BTreeMap<u32, Op::Partition> = BTreeMap::new();
        let mut snapshotted = false;
        let op_name = name.to_owned();
        let partitioner = self.ctx.info.partitioner;
        let views = StateViews::shared();
        let offered = Rc::clone(&views);
        let out = shuffle_batches(
            input,
            self.ticks.clone(),
            n,
            name,
            move |(k, _): &(K, StateInput<V, S>)| partitioner.partition(k, n),
            move |t, partitions, parts| {
                let snapshot_due = store.is_some() && runtime.snapshot_due(t);
                let batch = Batch {
                    t,
                    snapshot_due,
                    after_snapshot: std::mem::replace(&mut snapshotted, snapshot_due),
                };
                let mut log = store.as_mut().and_then(|s| s.log());
                for (q, records) in partitions {
                    let part = states.entry(q).or_default();
                    let out = op.apply(&batch, part, records, log.as_deref_mut());
                    parts.push(Part::new(PartitionId::new(q), out));
                }
                let keys = states.values().map(|p| Op::state(p).len()).sum();
                runtime.report_state(t, StateSize::of::<K, S>(&op_name, keys));
                offered
                    .borrow_mut()
                    .offer(t, states.iter().map(|(q, p)| (*q, Op::state(p))));
                if let Some(store) = store.as_mut().filter(|_| snapshot_due) {
                    save_state(store, &runtime, &op_name, t, keys, || {
                        states
                            .values()
                            .flat_map(|p| Op::state(p).iter().map(|(k, s)| (k, s, Op::aux(p, k))))
                            .collect()
                    });
                }
            },
        );
        (out, views)
    }
}
