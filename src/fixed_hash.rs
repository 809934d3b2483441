//! Hashing with a fixed seed, so that every worker of every process, and every run, agrees:
//! maps and sets that iterate alike (keyed operators, state snapshots and their deltas), and
//! the routing hash of a key. A leaf module: it depends on nothing else of the crate.

use std::hash::BuildHasher;

/// The worker-routing hash of a key: the same in every process of a job.
///
/// # Examples
///
/// ```
/// use sluice::dstream::pair::route;
/// assert_eq!(route("spark"), route(&"spark".to_owned()));
/// ```
pub fn route<K: std::hash::Hash + ?Sized>(key: &K) -> u64 {
    foldhash::quality::FixedState::with_seed(0x5EED_5EED).hash_one(key)
}

/// The hash maps of keyed operators: a fixed seed, so that every worker of every process, and
/// every run, iterates them alike.
pub(crate) type FixedMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;
/// A hash set with a fixed seed (see [`FixedMap`]).
pub(crate) type FixedSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;
