//! Hash maps and sets with a fixed seed, so that every worker of every process, and every run,
//! iterates them alike (keyed operators, state snapshots and their deltas). A leaf module: it
//! depends on nothing else of the crate.

/// The hash maps of keyed operators: a fixed seed, so that every worker of every process, and
/// every run, iterates them alike.
pub(crate) type FixedMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;
/// A hash set with a fixed seed (see [`FixedMap`]).
pub(crate) type FixedSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;
