//! Which partition a key goes to in a shuffle: sluice's own hash (the default), or Spark's
//! `HashPartitioner` value for value, so that `glom`, `mapPartitions` and the part files of
//! `saveAsTextFiles` after a shuffle hold exactly the records Spark's would.
//!
//! Spark puts key `k` in partition `nonNegativeMod(k.hashCode, n)`, with the JVM's `hashCode`:
//!
//! | Rust key | JVM key | `hashCode` |
//! |---|---|---|
//! | `String`, `&str` | `String` | `s[0]·31^(n-1) + … + s[n-1]` over UTF-16 code units |
//! | `i32`, `i16`, `i8` | `Integer`, `Short`, `Byte` | the value |
//! | `i64` | `Long` | `(int)(v ^ (v >>> 32))` |
//! | tuples of those | Scala's `Tuple2` … `Tuple22` | `MurmurHash3.productHash` of the elements' `##` |
//!
//! The JVM `hashCode` is read from the key's own [`Hash`] implementation (a hasher that notes
//! what each field writes), so no trait is needed on the key type. A key of another kind
//! (unsigned numbers, `bool`, vectors, nested tuples, your own types) has no JVM counterpart
//! here and falls back to sluice's hash, which every process computes alike but which puts
//! keys in other partition numbers than Spark's. `Partitioner::Sluice` is faster (one
//! hash, no UTF-16) and the default; which keys share a partition is the same in both.

use std::hash::{Hash, Hasher};

/// How shuffles place keys in partitions.
///
/// # Examples
///
/// ```
/// use sluice::spark_hash::Partitioner;
/// // Spark: "a".hashCode = 97, so partition 97 mod 2 = 1; 7 goes to 7 mod 2 = 1.
/// assert_eq!(Partitioner::Spark.partition(&"a", 2), 1);
/// assert_eq!(Partitioner::Spark.partition(&7i32, 2), 1);
/// assert!(Partitioner::Sluice.partition(&"a", 2) < 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Partitioner {
    /// sluice's own hash (foldhash with a fixed seed): the same in every process.
    #[default]
    Sluice,
    /// Spark's `HashPartitioner` with the JVM's `hashCode` of the key (see the module docs).
    Spark,
}

impl Partitioner {
    /// The partition of `key` among `partitions`.
    pub fn partition<K: Hash + ?Sized>(&self, key: &K, partitions: usize) -> u32 {
        let n = partitions.max(1);
        match self {
            Partitioner::Sluice => (crate::fixed_hash::route(key) % n as u64) as u32,
            Partitioner::Spark => match java_hash_code(key) {
                Some(h) => non_negative_mod(h, n as i32) as u32,
                None => (crate::fixed_hash::route(key) % n as u64) as u32,
            },
        }
    }
}

/// Spark's `Utils.nonNegativeMod`.
fn non_negative_mod(x: i32, m: i32) -> i32 {
    let r = x % m;
    if r < 0 { r + m } else { r }
}

/// The JVM `hashCode` of the key Spark would have for `key` (see the module docs), or `None`
/// for a key without a JVM counterpart here.
///
/// # Examples
///
/// ```
/// use sluice::spark_hash::java_hash_code;
/// assert_eq!(java_hash_code(&"spark"), Some(109638365));
/// assert_eq!(java_hash_code(&(1i64 << 40)), Some(256));
/// assert_eq!(java_hash_code(&true), None);
/// ```
pub fn java_hash_code<K: Hash + ?Sized>(key: &K) -> Option<i32> {
    let mut h = FieldHasher::default();
    key.hash(&mut h);
    if h.unsupported {
        return None;
    }
    if h.pending.is_some() {
        return None; // bytes without a string's end: a slice, not a string
    }
    match h.fields.as_slice() {
        [] => None,
        [one] => Some(one.hash_code()),
        many => Some(product_hash(many.iter().map(Field::scala_hash))),
    }
}

/// What one field of a key wrote to the hasher.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Str(String),
    Int(i32),
    Long(i64),
}

impl Field {
    /// Java's `hashCode`.
    fn hash_code(&self) -> i32 {
        match self {
            Field::Str(s) => s
                .encode_utf16()
                .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c))),
            Field::Int(v) => *v,
            Field::Long(v) => (*v ^ ((*v as u64) >> 32) as i64) as i32,
        }
    }

    /// Scala's `##`: as `hashCode`, but a `Long` that fits an `Int` hashes as that `Int`.
    fn scala_hash(&self) -> i32 {
        match self {
            Field::Long(v) if i32::try_from(*v).is_ok() => *v as i32,
            other => other.hash_code(),
        }
    }
}

/// Notes the fields a key's `Hash` writes: a string is bytes then `0xff`, numbers their own
/// width; anything else makes the key unsupported.
#[derive(Default)]
struct FieldHasher {
    fields: Vec<Field>,
    /// Bytes written and not yet ended by a string's `0xff`.
    pending: Option<Vec<u8>>,
    unsupported: bool,
}

impl Hasher for FieldHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.pending.is_some() {
            self.unsupported = true;
        }
        self.pending = Some(bytes.to_vec());
    }

    fn write_u8(&mut self, i: u8) {
        match self.pending.take() {
            Some(bytes) if i == 0xff => match String::from_utf8(bytes) {
                Ok(s) => self.fields.push(Field::Str(s)),
                Err(_) => self.unsupported = true,
            },
            _ => self.unsupported = true,
        }
    }

    fn write_i8(&mut self, i: i8) {
        self.number(Field::Int(i32::from(i)));
    }

    fn write_i16(&mut self, i: i16) {
        self.number(Field::Int(i32::from(i)));
    }

    fn write_i32(&mut self, i: i32) {
        self.number(Field::Int(i));
    }

    fn write_i64(&mut self, i: i64) {
        self.number(Field::Long(i));
    }

    fn write_u16(&mut self, _: u16) {
        self.unsupported = true;
    }

    fn write_u32(&mut self, _: u32) {
        self.unsupported = true;
    }

    fn write_u64(&mut self, _: u64) {
        self.unsupported = true;
    }

    fn write_u128(&mut self, _: u128) {
        self.unsupported = true;
    }

    fn write_i128(&mut self, _: i128) {
        self.unsupported = true;
    }

    fn write_usize(&mut self, _: usize) {
        self.unsupported = true;
    }

    fn write_isize(&mut self, _: isize) {
        self.unsupported = true;
    }
}

impl FieldHasher {
    fn number(&mut self, f: Field) {
        if self.pending.is_some() {
            self.unsupported = true;
        }
        self.fields.push(f);
    }
}

/// Scala 2.13's `MurmurHash3.productHash` of a tuple whose elements hash to `elements`: the
/// product's prefix (`Tuple2`, `Tuple3`, …) is mixed in first.
fn product_hash(elements: impl ExactSizeIterator<Item = i32>) -> i32 {
    use murmur3::{finalize_hash, mix};
    const PRODUCT_SEED: i32 = 0xcafe_babe_u32 as i32;
    let arity = elements.len() as i32;
    let prefix = Field::Str(format!("Tuple{arity}")).hash_code();
    let mut h = mix(PRODUCT_SEED, prefix);
    for e in elements {
        h = mix(h, e);
    }
    finalize_hash(h, arity)
}

/// Scala's `scala.util.hashing.MurmurHash3` steps (32-bit, as the JVM computes them), shared
/// with Spark's `repartition` placement in `partition`.
pub(crate) mod murmur3 {
    /// `mixLast`.
    pub(crate) fn mix_last(h: i32, k: i32) -> i32 {
        let k = k.wrapping_mul(0xcc9e_2d51_u32 as i32).rotate_left(15);
        h ^ k.wrapping_mul(0x1b87_3593)
    }

    /// `mix`.
    pub(crate) fn mix(h: i32, data: i32) -> i32 {
        mix_last(h, data)
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64_u32 as i32)
    }

    /// `finalizeHash`: the length mixed in, then the avalanche.
    pub(crate) fn finalize_hash(h: i32, length: i32) -> i32 {
        let mut h = (h ^ length) as u32;
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^= h >> 16;
        h as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compact_string_key_goes_where_its_string_goes() {
        use compact_str::CompactString;
        for word in [
            "",
            "a",
            "hello",
            "a word longer than twenty-four bytes",
            "é😀",
        ] {
            let (s, c) = (word.to_owned(), CompactString::from(word));
            assert_eq!(crate::fixed_hash::route(&c), crate::fixed_hash::route(&s));
            assert_eq!(java_hash_code(&c), java_hash_code(&s));
            for n in [1, 2, 7] {
                for p in [Partitioner::Sluice, Partitioner::Spark] {
                    assert_eq!(
                        p.partition(&(c.clone(), 1u64), n),
                        p.partition(&(s.clone(), 1u64), n)
                    );
                }
            }
            // The same bytes in a checkpoint, either way round.
            let bytes = crate::checkpoint::codec::encode(&c).expect("encodes");
            assert_eq!(
                bytes,
                crate::checkpoint::codec::encode(&s).expect("encodes")
            );
            assert_eq!(
                crate::checkpoint::codec::decode::<String>(&bytes).ok(),
                Some(s)
            );
        }
    }

    #[test]
    fn java_hash_codes_of_strings_ints_and_longs() {
        assert_eq!(java_hash_code(&""), Some(0));
        assert_eq!(java_hash_code(&"a"), Some(97));
        assert_eq!(java_hash_code(&"hello".to_owned()), Some(99_162_322));
        // UTF-16 code units: a character outside the BMP is two of them.
        assert_eq!(java_hash_code(&"é"), Some(233));
        assert_eq!(java_hash_code(&"😀"), Some(0xD83D * 31 + 0xDE00));
        assert_eq!(java_hash_code(&-5i32), Some(-5));
        assert_eq!(java_hash_code(&-1i64), Some(0));
        assert_eq!(java_hash_code(&vec![1u8]), None);
        assert_eq!(java_hash_code(&5u32), None);
    }

    /// The reference values are Spark 4.3's own (Scala 2.13.18's `Tuple2.hashCode` and
    /// `HashPartitioner(5).getPartition`, printed by jshell on the pyspark wheel's jars).
    #[test]
    fn tuples_hash_as_scala_s_and_partitions_are_spark_s() {
        assert_eq!(java_hash_code(&("a", 1i32)), Some(-1_734_940_110));
        assert_eq!(
            java_hash_code(&("x".to_owned(), "y".to_owned())),
            Some(-1_266_621_165)
        );
        assert_eq!(java_hash_code(&("x", 5i64)), Some(-1_829_970_882));
        assert_eq!(java_hash_code(&("x", 1i64 << 40)), Some(-291_376_230));
        assert_eq!(java_hash_code(&("a", 2i32, "c")), Some(1_830_982_208));
        let p = Partitioner::Spark;
        assert_eq!(p.partition(&"spark", 5), 0);
        assert_eq!(p.partition(&("a", 1i32), 5), 0);
        assert_eq!(p.partition(&-3i64, 5), 2);
        assert_eq!(p.partition(&-7i32, 5), 3);
    }

    #[test]
    fn partitions_are_non_negative() {
        // "polygenelubricants".hashCode is i32::MIN.
        assert_eq!(java_hash_code(&"polygenelubricants"), Some(i32::MIN));
        assert_eq!(Partitioner::Spark.partition(&"polygenelubricants", 3), 1);
        assert_eq!(Partitioner::Spark.partition(&-7i32, 4), 1);
    }
}
