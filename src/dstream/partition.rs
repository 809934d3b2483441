//! Spark's partitions, carried on chunks of records and decoupled from workers.
//!
//! Every batch of a DStream consists of numbered partitions, as Spark's RDD of that batch
//! would (`ARCHITECTURE.md` §3). A record belongs to the partition of the [`Part`] (chunk) it
//! travels in; the partition is carried once per chunk, never per record.
//!
//! **Identity and order.** A [`PartitionId`] is a short path of indices that sorts
//! lexicographically: a source's partition `i` is `[i]`; `union` puts each branch's partitions
//! under the branch's index (`[0, i]`, then `[1, j]`), so sorting concatenates the branches as
//! Spark's `UnionRDD` does; a window puts each batch's partitions under the batch's position in
//! the window. A whole batch is its partitions concatenated in id order, each in its own order.
//!
//! **Placement.** The worker that runs a partition is its innermost index modulo the number of
//! workers ([`PartitionId::worker`]). Prefixes do not change it, so `union` and windows move no
//! data; shuffles (`repartition`, the keyed operators) send each record to its new partition's
//! worker.
//!
//! **Invariants** every operator keeps:
//! - all chunks of one partition of one batch are on that partition's worker, in order (one
//!   producer per partition and FIFO channels between two workers);
//! - every partition of a batch is announced by at least one chunk, possibly empty, so that
//!   `glom`, `map_partitions` and `foreach_partition` see empty partitions as Spark does;
//! - a shuffle reads its input partitions in id order (whatever order they arrive in), and uses
//!   hash maps with a fixed seed, so its output is the same on any number of workers.

use std::collections::BTreeMap;
use std::hash::Hash;

use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;

use super::batch_op::batch_fold;

pub use crate::partition_id::PartitionId;

/// A chunk of records of one partition: what a DStream's timely stream carries.
///
/// A partition of a batch may arrive in several chunks (a large source batch is fed in pieces);
/// an empty chunk announces a partition that has no records.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Part<T> {
    /// The partition.
    pub id: PartitionId,
    /// Its records (in this chunk), in order.
    pub records: Vec<T>,
}

impl<T> Part<T> {
    /// A chunk of partition `id`.
    pub fn new(id: PartitionId, records: Vec<T>) -> Self {
        Part { id, records }
    }
}

/// A timely stream of partition chunks, at batch times.
pub type Parts<'s, T> = StreamVec<'s, u64, Part<T>>;

/// Records bound for one partition of a shuffle, from one input partition.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Shard<T> {
    pub(crate) to: u32,
    pub(crate) from: PartitionId,
    pub(crate) records: Vec<T>,
}

pub(crate) use crate::fixed_hash::{FixedMap, FixedSet};

/// The partition (of `partitions`) of a key with sluice's default partitioner: Spark's
/// `HashPartitioner` with a hash that every process computes alike (not the JVM's `hashCode`,
/// so a key's partition number differs from Spark's; which keys share a partition, and that
/// co-partitioned streams meet, does not). `StreamingConfig::partitioner(Partitioner::Spark)`
/// uses the JVM's (see [`spark_hash`](crate::spark_hash)).
///
/// # Examples
///
/// ```
/// use sluice::dstream::partition::hash_partition;
/// let p = hash_partition(&"spark", 4);
/// assert!(p < 4);
/// assert_eq!(p, hash_partition(&"spark".to_owned(), 4)); // &str and String hash alike
/// ```
pub fn hash_partition<K: Hash + ?Sized>(key: &K, partitions: usize) -> u32 {
    crate::spark_hash::Partitioner::Sluice.partition(key, partitions)
}

/// The partitions `0..n` that worker `index` of `peers` runs.
pub(crate) fn owned(n: usize, index: usize, peers: usize) -> impl Iterator<Item = u32> {
    (0..n as u32).filter(move |q| (u64::from(*q) % peers.max(1) as u64) as usize == index)
}

/// Maps every chunk's records, keeping its partition (the narrow operators).
pub(crate) fn map_parts<'s, T: 'static, U: 'static>(
    parts: Parts<'s, T>,
    name: &str,
    mut f: impl FnMut(Vec<T>) -> Vec<U> + 'static,
) -> Parts<'s, U> {
    parts.unary(Pipeline, name, move |_, _| {
        move |input, output| {
            input.for_each(|cap, chunks| {
                let mut session = output.session(&cap);
                for part in chunks.drain(..) {
                    session.give(Part::new(part.id, f(part.records)));
                }
            });
        }
    })
}

/// Relabels every chunk's partition (union branches, window positions); no data moves.
pub(crate) fn relabel<'s, T: 'static>(
    parts: Parts<'s, T>,
    name: &str,
    f: impl Fn(&PartitionId) -> PartitionId + 'static,
) -> Parts<'s, T> {
    parts.unary(Pipeline, name, move |_, _| {
        move |input, output| {
            input.for_each(|cap, chunks| {
                for part in chunks.iter_mut() {
                    part.id = f(&part.id);
                }
                output.session(&cap).give_container(chunks);
            });
        }
    })
}

/// The chunks of one batch on one worker, gathered per partition in id order.
pub(crate) fn by_partition<T>(chunks: Vec<Part<T>>) -> BTreeMap<PartitionId, Vec<T>> {
    let mut parts: BTreeMap<PartitionId, Vec<T>> = BTreeMap::new();
    for part in chunks {
        let slot = parts.entry(part.id).or_default();
        if slot.is_empty() {
            *slot = part.records;
        } else {
            slot.extend(part.records);
        }
    }
    parts
}

/// Once batch `t` is complete, `f(t, id, records)` for every partition of `t` on this worker, in
/// id order, with all of its records; what `f` returns is that partition of the output
/// (`glom`, `map_partitions`, `transform`).
pub(crate) fn per_partition<'s, T: 'static, U: 'static>(
    parts: Parts<'s, T>,
    ticks: StreamVec<'s, u64, u64>,
    name: &str,
    mut f: impl FnMut(u64, &PartitionId, Vec<T>) -> Vec<U> + 'static,
) -> Parts<'s, U> {
    per_batch_partitions(parts, ticks, name, move |t, partitions| {
        partitions
            .into_iter()
            .map(|(id, records)| {
                let records = f(t, &id, records);
                (id, records)
            })
            .collect()
    })
}

/// Once batch `t` is complete, `f(t, partitions)` once with every partition of `t` on this
/// worker, in id order, each with all of its records; `f` returns the output's partitions (a
/// source reading its partitions concurrently: directory streams).
pub(crate) fn per_batch_partitions<'s, T: 'static, U: 'static>(
    parts: Parts<'s, T>,
    ticks: StreamVec<'s, u64, u64>,
    name: &str,
    mut f: impl FnMut(u64, Vec<(PartitionId, Vec<T>)>) -> Vec<(PartitionId, Vec<U>)> + 'static,
) -> Parts<'s, U> {
    batch_fold(
        parts,
        ticks,
        Pipeline,
        Pipeline,
        name,
        Vec::new,
        |acc: &mut Vec<Part<T>>, data: &mut Vec<Part<T>>| acc.append(data),
        move |t, chunks, out| {
            let partitions = by_partition(chunks).into_iter().collect();
            for (id, records) in f(t, partitions) {
                out.push(Part::new(id, records));
            }
        },
    )
}

/// Once batch `t` is complete, the whole batch on worker 0 (its partitions concatenated in id
/// order) for `f(t, records)`; `f` runs once per batch, also for empty batches, on worker 0 only.
pub(crate) fn gather<'s, T: super::Data, U: 'static>(
    parts: Parts<'s, T>,
    ticks: StreamVec<'s, u64, u64>,
    name: &str,
    mut f: impl FnMut(u64, Vec<T>, &mut Vec<U>) + 'static,
) -> StreamVec<'s, u64, U> {
    batch_fold(
        parts,
        ticks,
        Exchange::new(|_: &Part<T>| 0),
        Exchange::new(|_: &u64| 0),
        name,
        Vec::new,
        |acc: &mut Vec<Part<T>>, data: &mut Vec<Part<T>>| acc.append(data),
        move |t, chunks, out| f(t, concat_in_order(chunks), out),
    )
}

/// The records of a batch's chunks: partitions in id order, chunks of one partition in the
/// order they came.
pub(crate) fn concat_in_order<T>(mut chunks: Vec<Part<T>>) -> Vec<T> {
    chunks.sort_by(|a, b| a.id.cmp(&b.id)); // stable: chunks of a partition keep their order
    let total = chunks.iter().map(|p| p.records.len()).sum();
    let mut records = Vec::with_capacity(total);
    for part in chunks {
        records.extend(part.records);
    }
    records
}

/// A shuffle into `n` partitions: `to(record)` names each record's partition. Once batch `t` is
/// complete, every worker calls `finish(t, q, records)` for each partition `q` of `0..n` it
/// owns — also for one that received nothing — with the records of `q` from every input
/// partition, input partitions in id order, each in its order; what `finish` returns is
/// partition `q` of the output.
pub(crate) fn shuffle<'s, T: super::Data, U: 'static>(
    parts: Parts<'s, T>,
    ticks: StreamVec<'s, u64, u64>,
    n: usize,
    name: &str,
    to: impl Fn(&T) -> u32 + 'static,
    mut finish: impl FnMut(u64, u32, Vec<T>) -> Vec<U> + 'static,
) -> Parts<'s, U> {
    shuffle_batches(parts, ticks, n, name, to, move |t, partitions, out| {
        for (q, records) in partitions {
            out.push(Part::new(PartitionId::new(q), finish(t, q, records)));
        }
    })
}

/// [`shuffle`] for operators that keep per-worker bookkeeping: `finish(t, partitions, out)` gets
/// every partition this worker owns at once, in order (`(q, records)`), and pushes the output
/// chunks (one per `q`, so that every partition is announced).
pub(crate) fn shuffle_batches<'s, T: super::Data, U: 'static>(
    parts: Parts<'s, T>,
    ticks: StreamVec<'s, u64, u64>,
    n: usize,
    name: &str,
    to: impl Fn(&T) -> u32 + 'static,
    finish: impl FnMut(u64, Vec<(u32, Vec<T>)>, &mut Vec<Part<U>>) + 'static,
) -> Parts<'s, U> {
    let n = n.max(1);
    let shards = split(parts, n, &format!("{name}Split"), to);
    collect_shards(shards, ticks, n, name, finish)
}

/// The reduce side of a shuffle: the shards of each batch, on the workers of their partitions,
/// handed to `finish` as [`shuffle_batches`] does.
pub(crate) fn collect_shards<'s, T: super::Data, U: 'static>(
    shards: StreamVec<'s, u64, Shard<T>>,
    ticks: StreamVec<'s, u64, u64>,
    n: usize,
    name: &str,
    mut finish: impl FnMut(u64, Vec<(u32, Vec<T>)>, &mut Vec<Part<U>>) + 'static,
) -> Parts<'s, U> {
    let n = n.max(1);
    let (index, peers) = (shards.scope().index(), shards.scope().peers());
    batch_fold(
        shards,
        ticks,
        Exchange::new(|s: &Shard<T>| u64::from(s.to)),
        Pipeline,
        name,
        Vec::new,
        |acc: &mut Vec<Shard<T>>, data: &mut Vec<Shard<T>>| acc.append(data),
        move |t, mut shards, out| {
            // Input partitions in id order (stable: one input partition's shards keep theirs).
            shards.sort_by(|a, b| (a.to, &a.from).cmp(&(b.to, &b.from)));
            let mut shards = shards.into_iter().peekable();
            let mut partitions = Vec::new();
            for q in owned(n, index, peers) {
                let mut records = Vec::new();
                while let Some(s) = shards.next_if(|s| s.to == q) {
                    if records.is_empty() {
                        records = s.records;
                    } else {
                        records.extend(s.records);
                    }
                }
                partitions.push((q, records));
            }
            finish(t, partitions, out);
        },
    )
}

/// The map side of a shuffle: each chunk's records split by destination partition, in order.
fn split<'s, T: super::Data>(
    parts: Parts<'s, T>,
    n: usize,
    name: &str,
    to: impl Fn(&T) -> u32 + 'static,
) -> StreamVec<'s, u64, Shard<T>> {
    parts.unary(Pipeline, name, move |_, _| {
        move |input, output| {
            input.for_each(|cap, chunks| {
                let mut session = output.session(&cap);
                for part in chunks.drain(..) {
                    session.give_iterator(into_shards(part, n, &to));
                }
            });
        }
    })
}

/// A chunk's records grouped by their partition of `0..n` (`to` of each, in order), as the
/// shards of a shuffle (none for a partition that gets nothing).
pub(crate) fn into_shards<T>(
    part: Part<T>,
    n: usize,
    mut to: impl FnMut(&T) -> u32,
) -> impl Iterator<Item = Shard<T>> {
    let mut by_target: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for record in part.records {
        let q = (to(&record) as usize).min(n - 1);
        by_target[q].push(record);
    }
    let from = part.id;
    by_target
        .into_iter()
        .enumerate()
        .filter(|(_, records)| !records.is_empty())
        .map(move |(q, records)| Shard {
            to: q as u32,
            from: from.clone(),
            records,
        })
}

/// Spark's `repartition(n)` placement: input partition `index` deals its records round robin
/// over `0..n`, starting after position `XORShiftRandom(index).nextInt(n)` (Spark's
/// `RDD.coalesce(n, shuffle = true)`), so each output partition receives the same records as
/// in Spark.
pub(crate) struct SparkRoundRobin {
    position: u64,
    n: u64,
}

impl SparkRoundRobin {
    pub(crate) fn new(index: u32, n: usize) -> Self {
        let n = n.max(1);
        let mut random = XorShiftRandom::new(i64::from(index));
        SparkRoundRobin {
            position: random.next_int(n as i32) as u64,
            n: n as u64,
        }
    }

    /// The partition of the next record.
    pub(crate) fn next_partition(&mut self) -> u32 {
        self.position += 1;
        (self.position % self.n) as u32
    }
}

/// Spark's `XORShiftRandom` (a `java.util.Random` whose `next(bits)` is an xorshift over a
/// MurmurHash3-hashed seed), as far as `nextInt(bound)` needs it.
struct XorShiftRandom {
    seed: i64,
}

impl XorShiftRandom {
    fn new(init: i64) -> Self {
        let bytes = init.to_be_bytes();
        let low = murmur3_bytes(&bytes, 0x3c07_4a61);
        let high = murmur3_bytes(&bytes, low);
        XorShiftRandom {
            seed: (i64::from(high) << 32) | (i64::from(low) & 0xFFFF_FFFF),
        }
    }

    fn next(&mut self, bits: u32) -> i32 {
        let mut s = self.seed ^ (self.seed << 21);
        s ^= ((s as u64) >> 35) as i64;
        s ^= s << 4;
        self.seed = s;
        (s & ((1i64 << bits) - 1)) as i32
    }

    /// `java.util.Random.nextInt(bound)`.
    fn next_int(&mut self, bound: i32) -> i32 {
        let mut r = self.next(31);
        let m = bound - 1;
        if bound & m == 0 {
            return ((i64::from(bound) * i64::from(r)) >> 31) as i32;
        }
        let mut u = r;
        loop {
            r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return r;
            }
            u = self.next(31);
        }
    }
}

/// Scala's `MurmurHash3.bytesHash(data, seed)`.
fn murmur3_bytes(data: &[u8], seed: i32) -> i32 {
    use crate::spark_hash::murmur3::{finalize_hash, mix, mix_last};
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        h = mix(h, i32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut k = 0i32;
        for (i, b) in tail.iter().enumerate() {
            k ^= i32::from(*b) << (8 * i);
        }
        h = mix_last(h, k);
    }
    finalize_hash(h, data.len() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_as_sparks_union_and_place_by_their_innermost_index() {
        let mut ids = [
            PartitionId::new(1).under(1),
            PartitionId::new(0).under(1),
            PartitionId::new(1).under(0),
            PartitionId::new(0).under(0),
        ];
        ids.sort();
        let shown: Vec<String> = ids.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown, ["0.0", "0.1", "1.0", "1.1"]);
        assert_eq!(PartitionId::new(5).under(3).worker(2), 1);
        assert_eq!(owned(5, 1, 2).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn round_robin_deals_every_partition_evenly() {
        for n in [1usize, 2, 3, 5, 8] {
            for index in 0..4 {
                let mut rr = SparkRoundRobin::new(index, n);
                let mut counts = vec![0usize; n];
                for _ in 0..(10 * n) {
                    counts[rr.next_partition() as usize] += 1;
                }
                assert!(counts.iter().all(|c| *c == 10), "{n} {index} {counts:?}");
            }
        }
    }

    #[test]
    fn murmur3_matches_scala() {
        // Scala: MurmurHash3.bytesHash(Array[Byte](), 0) == 0 and the reference vectors of
        // MurmurHash3_x86_32 (Scala's bytesHash is that function).
        assert_eq!(murmur3_bytes(&[], 0), 0);
        assert_eq!(murmur3_bytes(&[], 1) as u32, 0x514E_28B7);
        assert_eq!(murmur3_bytes(&[0, 0, 0, 0], 0) as u32, 0x2362_F9DE);
        assert_eq!(murmur3_bytes(b"Hello, world!", 1234) as u32, 0xFAF6_CDB3);
    }
}
