//! Incremental state snapshots: a part that holds only the keys changed since a full part.
//!
//! A keyed operator's state is `(key, state, aux)` entries (`aux` is the operator's own word on
//! the key, see `StateInput::Restored`). A snapshot part of one worker is either
//!
//! - **full** ([`Kind::StatePart`](super::file::Kind::StatePart)): every entry, or
//! - **delta** ([`Kind::StateDelta`](super::file::Kind::StateDelta)): `base: u64 LE` — the
//!   batch of a full part of the same operator and worker, kept in `state-<base>/` under the same
//!   file name — then the **changes since that base**: `(key, Some((state, aux)))` for a key
//!   set or changed, `(key, None)` for a key removed. The state is the base with the changes
//!   applied; recovery reads two files, whatever the number of snapshots since the base.
//!
//! **Who does what.** A keyed operator logs each batch's changes as it makes them, encoded
//! ([`Changelog`]: the changes of a batch cost in proportion to that batch's work), so a
//! snapshot batch only hands the log since its previous snapshot over — from the start of the
//! run (restored state included) for its first one. The process's part writer (`parts`) keeps
//! each chain's changes since its base in memory, folds each handed-over log into them
//! ([`merge_changes`]), and writes them as the snapshot's delta part. When the changes reach
//! a quarter of the state, after [`MAX_DELTAS`] deltas, or for a run's first snapshot (its
//! changes since empty state), it compacts in the background: reads the base, applies the
//! changes ([`apply_changes`]) and writes a full part, the base of the deltas that follow. A
//! worker encodes its whole state on the batch's path only after a failed write of its chain
//! (its log no longer follows a written part), or when incremental snapshots are off.
//!
//! Invariants:
//! - a delta part's base exists when the delta is written (the writer checks), and pruning
//!   keeps every base a kept snapshot names in its manifest;
//! - a chain is one worker's, within one run: parts of other worker counts or runs never chain;
//! - a failed write ends the chain: the worker's next snapshot is full.

use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{self, CodecError};
use crate::fixed_hash::FixedMap;

/// Deltas written on one base before the writer compacts them into a full part regardless of
/// their size (bounds how long a base and the plans after it are kept).
pub(crate) const MAX_DELTAS: u32 = 10;

/// Changes encoded as they are made, in order (a later change of a key wins), as one list
/// once taken: what a keyed operator hands over at a snapshot.
///
/// The list's encoding is the codec's for a `Vec<(key, change)>`: its length, then the items; items
/// are encoded one by one as they come and the length is put in front when the log is taken.
#[derive(Default)]
pub(crate) struct Changelog {
    items: Vec<u8>,
    count: usize,
    /// A change could not be encoded: the log no longer holds every change.
    broken: bool,
}

impl Changelog {
    /// Logs that `key` now has `change` (its state and aux, or `None`: it is gone).
    pub(crate) fn push<K: Serialize, S: Serialize>(&mut self, key: &K, change: Option<(&S, u64)>) {
        match codec::encode_onto(&(key, change), std::mem::take(&mut self.items)) {
            Ok(items) => {
                self.items = items;
                self.count += 1;
            }
            Err(_) => self.broken = true,
        }
    }

    /// Whether every change since the log was last taken is in it.
    pub(crate) fn whole(&self) -> bool {
        !self.broken
    }

    /// The changes logged since the last call, as one encoded list, and their number; the log
    /// starts again empty (and whole).
    pub(crate) fn take(&mut self) -> Result<(Vec<u8>, usize), CodecError> {
        let mut list = codec::encode(&self.count)?;
        list.append(&mut self.items);
        let count = std::mem::take(&mut self.count);
        self.broken = false;
        Ok((list, count))
    }

    /// Forgets what was logged (a full part was written instead).
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.count = 0;
        self.broken = false;
    }
}

/// An entry of a full part, as written.
pub(crate) type FullEntry<'a, K, S> = (&'a K, &'a S, u64);

/// A change as read back.
type OwnedChange<K, S> = (K, Option<(S, u64)>);

/// The typed work the type-erased part writer needs for one operator's state.
#[derive(Clone, Copy)]
pub(crate) struct StateCodec {
    /// `merge_changes::<K, S>`.
    pub(crate) merge: fn(&[u8], &[u8]) -> Result<(Vec<u8>, usize), CodecError>,
    /// `apply_changes::<K, S>`.
    pub(crate) apply: fn(&[u8], &[u8]) -> Result<Vec<u8>, CodecError>,
}

impl StateCodec {
    /// The codec of `(K, S)` state.
    pub(crate) fn of<K, S>() -> Self
    where
        K: Serialize + DeserializeOwned + Hash + Eq,
        S: Serialize + DeserializeOwned,
    {
        StateCodec {
            merge: merge_changes::<K, S>,
            apply: apply_changes::<K, S>,
        }
    }
}

/// A full part of no entries (the base of a run's first changes).
pub(crate) const EMPTY_FULL: &[u8] = &[0];

/// A delta part's payload: its base, then the encoded changes.
pub(crate) fn delta_payload(base: u64, changes: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + changes.len());
    payload.extend_from_slice(&base.to_le_bytes());
    payload.extend_from_slice(changes);
    payload
}

/// Splits a delta part's payload into its base and its encoded changes; `None` when it is too
/// short to hold a base.
pub(crate) fn split_delta(payload: &[u8]) -> Option<(u64, &[u8])> {
    let (base, changes) = payload.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*base), changes))
}

/// Applies `changes` to full entries (a changed key's entry replaced, a removed key's dropped).
pub(crate) fn apply<K: Hash + Eq, S>(
    full: Vec<(K, S, u64)>,
    changes: Vec<OwnedChange<K, S>>,
) -> Vec<(K, S, u64)> {
    let mut changed: FixedMap<K, Option<(S, u64)>> = changes.into_iter().collect();
    let mut out: Vec<(K, S, u64)> = full
        .into_iter()
        .filter(|(k, _, _)| !changed.contains_key(k))
        .collect();
    out.extend(
        changed
            .drain()
            .filter_map(|(k, c)| c.map(|(s, aux)| (k, s, aux))),
    );
    out
}

/// Folds `newer` changes into `older` ones (a key's newer change wins); the encoded result and
/// its number of changes.
pub(crate) fn merge_changes<K, S>(
    older: &[u8],
    newer: &[u8],
) -> Result<(Vec<u8>, usize), CodecError>
where
    K: Serialize + DeserializeOwned + Hash + Eq,
    S: Serialize + DeserializeOwned,
{
    let older: Vec<OwnedChange<K, S>> = codec::decode(older)?;
    let newer: Vec<OwnedChange<K, S>> = codec::decode(newer)?;
    let mut merged: FixedMap<K, Option<(S, u64)>> = older.into_iter().collect();
    merged.extend(newer);
    let merged: Vec<OwnedChange<K, S>> = merged.into_iter().collect();
    Ok((codec::encode(&merged)?, merged.len()))
}

/// A full part's payload with `changes` applied: the next full part.
pub(crate) fn apply_changes<K, S>(full: &[u8], changes: &[u8]) -> Result<Vec<u8>, CodecError>
where
    K: Serialize + DeserializeOwned + Hash + Eq,
    S: Serialize + DeserializeOwned,
{
    let full: Vec<(K, S, u64)> = codec::decode(full)?;
    let changes: Vec<OwnedChange<K, S>> = codec::decode(changes)?;
    codec::encode(&apply(full, changes))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    type Model = BTreeMap<u8, (u16, u64)>;

    fn full_of(m: &Model) -> Vec<u8> {
        let entries: Vec<FullEntry<'_, u8, u16>> = m.iter().map(|(k, (s, a))| (k, s, *a)).collect();
        codec::encode(&entries).unwrap()
    }

    fn changes_of(c: &[(u8, Option<(u16, u64)>)]) -> Vec<u8> {
        let changes: Vec<(&u8, Option<(&u16, u64)>)> = c
            .iter()
            .map(|(k, v)| (k, v.as_ref().map(|(s, a)| (s, *a))))
            .collect();
        codec::encode(&changes).unwrap()
    }

    fn decoded(full: &[u8]) -> Model {
        codec::decode::<Vec<(u8, u16, u64)>>(full)
            .unwrap()
            .into_iter()
            .map(|(k, s, a)| (k, (s, a)))
            .collect()
    }

    fn step(m: &mut Model, c: &[(u8, Option<(u16, u64)>)]) {
        for (k, v) in c {
            match v {
                Some(x) => m.insert(*k, *x),
                None => m.remove(k),
            };
        }
    }

    proptest! {
        /// The oracle: a base, then several batches of changes folded together and applied,
        /// equals the state changed in place batch by batch.
        #[test]
        fn folded_changes_applied_to_the_base_are_the_state(
            base in prop::collection::btree_map(any::<u8>(), (any::<u16>(), 0..3u64), 0..60),
            batches in prop::collection::vec(
                prop::collection::btree_map(any::<u8>(), prop::option::of((any::<u16>(), 0..3u64)), 0..30)
                    .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
                1..6),
        ) {
            let mut model = base.clone();
            let mut folded: Option<Vec<u8>> = None;
            for batch in &batches {
                step(&mut model, batch);
                let newer = changes_of(batch);
                folded = Some(match folded {
                    None => newer,
                    Some(older) => merge_changes::<u8, u16>(&older, &newer).unwrap().0,
                });
            }
            let folded = folded.unwrap();
            let next = apply_changes::<u8, u16>(&full_of(&base), &folded).unwrap();
            prop_assert_eq!(decoded(&next), model);
        }
    }

    #[test]
    fn a_changelog_is_the_encoding_of_its_changes_as_one_list() {
        let mut log = Changelog::default();
        let changes: Vec<(u8, Option<(u16, u64)>)> = (0..300u16)
            .map(|i| ((i % 256) as u8, (i % 3 != 0).then_some((i, 1))))
            .collect();
        for (k, c) in &changes {
            log.push(k, c.as_ref().map(|(s, a)| (s, *a)));
        }
        let (list, n) = log.take().unwrap();
        assert_eq!(n, 300);
        assert_eq!(list, changes_of(&changes));
        assert_eq!(log.take().unwrap(), (codec::encode(&0usize).unwrap(), 0));
        let empty: Vec<(u8, u16, u64)> = Vec::new();
        assert_eq!(codec::encode(&empty).unwrap(), EMPTY_FULL);
    }

    #[test]
    fn a_delta_payload_splits_into_its_base_and_changes() {
        let payload = delta_payload(4_000, b"xyz");
        assert_eq!(split_delta(&payload), Some((4_000, &b"xyz"[..])));
        assert_eq!(split_delta(b"short"), None);
    }

    #[test]
    fn merge_counts_distinct_keys() {
        let a = changes_of(&[(1, Some((1, 0))), (2, None)]);
        let b = changes_of(&[(2, Some((5, 1))), (3, None)]);
        let (merged, n) = merge_changes::<u8, u16>(&a, &b).unwrap();
        assert_eq!(n, 3);
        let mut back: Vec<(u8, Option<(u16, u64)>)> = codec::decode(&merged).unwrap();
        back.sort();
        assert_eq!(back, vec![(1, Some((1, 0))), (2, Some((5, 1))), (3, None)]);
    }
}
