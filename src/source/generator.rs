//! A generator of random words at a set rate, for demos and benchmarks (like Spark's
//! `RateStreamSource`, but producing text lines for word counts).
//!
//! Batch `k` holds exactly `floor(rate × (k+1) × interval) − floor(rate × k × interval)` words
//! (interval in seconds), split evenly over the job's default-parallelism partitions, as lines
//! of `words_per_line` words drawn from a vocabulary of `vocabulary` distinct words with a
//! random generator seeded per partition.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::{BatchOut, BatchReader, BatchSlot};

/// Settings of the generator source.
///
/// # Examples
///
/// ```
/// let g = sluice::source::GeneratorConfig { rate_per_sec: 1000, ..Default::default() };
/// assert_eq!(g.words_in_batch(0, 1000), 1000);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Words per second over the whole job.
    pub rate_per_sec: u64,
    /// Distinct words.
    pub vocabulary: usize,
    /// Words per line.
    pub words_per_line: usize,
    /// Seed of the random generator (each partition adds its index).
    pub seed: u64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            rate_per_sec: 10,
            vocabulary: 100,
            words_per_line: 5,
            seed: 42,
        }
    }
}

impl GeneratorConfig {
    /// Words in batch number `index` (0-based) for an interval of `interval_ms`.
    pub fn words_in_batch(&self, index: u64, interval_ms: u64) -> u64 {
        let upto = |k: u64| {
            (u128::from(self.rate_per_sec) * u128::from(k) * u128::from(interval_ms) / 1000) as u64
        };
        upto(index + 1) - upto(index)
    }
}

const WORDS: &[&str] = &[
    "spark",
    "streaming",
    "sluice",
    "timely",
    "dataflow",
    "batch",
    "window",
    "state",
    "kafka",
    "offset",
    "hello",
    "world",
    "you",
    "me",
    "she",
    "he",
    "stream",
    "record",
    "key",
    "value",
    "count",
    "reduce",
    "join",
    "filter",
    "map",
    "flat",
    "union",
    "print",
    "socket",
    "line",
];

/// The `i`-th vocabulary word.
fn word(i: usize) -> String {
    match WORDS.get(i) {
        Some(w) => (*w).to_owned(),
        None => format!("w{i}"),
    }
}

/// The generator as a [`BatchReader`]: usable on its own, e.g. to produce the same lines a
/// job sees for a baseline measurement.
///
/// # Examples
///
/// ```
/// use sluice::source::{BatchOut, BatchReader, BatchSlot, Generator, GeneratorConfig};
/// let mut g = Generator::new(GeneratorConfig { rate_per_sec: 100, ..Default::default() }, 2);
/// let slot = BatchSlot { time: sluice::Time::from_millis(1000), interval_ms: 1000, index: 0, worker: 0, peers: 1, last: false };
/// let mut out = BatchOut::new(0);
/// g.read_batch(&slot, &mut out);
/// let parts = out.into_parts();
/// assert_eq!(parts.len(), 2); // two partitions, both on the only worker
/// assert_eq!(parts.iter().flat_map(|p| &p.records).map(|l| l.split(' ').count()).sum::<usize>(), 100);
/// ```
pub struct Generator {
    config: GeneratorConfig,
    vocabulary: Vec<String>,
    partitions: usize,
    /// Per partition this worker has generated: its pool of lines and random generator.
    slots: std::collections::BTreeMap<u32, Slot>,
}

/// One partition's generator: a pool of ready lines, reused round robin (keeps the
/// generator's own cost low), and its random generator.
struct Slot {
    pool: Vec<String>,
    next_line: usize,
    rng: SmallRng,
}

impl Generator {
    /// A generator of `partitions` partitions (each with a seed of its own, so that a batch is
    /// the same whichever worker generates which partition).
    pub fn new(mut config: GeneratorConfig, partitions: usize) -> Self {
        config.vocabulary = config.vocabulary.max(1);
        config.words_per_line = config.words_per_line.max(1);
        let vocabulary: Vec<String> = (0..config.vocabulary).map(word).collect();
        Generator {
            config,
            vocabulary,
            partitions: partitions.max(1),
            slots: Default::default(),
        }
    }
}

impl Slot {
    fn new(config: &GeneratorConfig, vocabulary: &[String], i: u32) -> Self {
        let mut rng = SmallRng::seed_from_u64(config.seed.wrapping_add(u64::from(i)));
        let pool = (0..4096)
            .map(|_| random_line(vocabulary, config.words_per_line, &mut rng))
            .collect();
        Slot {
            pool,
            next_line: 0,
            rng,
        }
    }
}

fn random_line(vocabulary: &[String], words: usize, rng: &mut SmallRng) -> String {
    let mut line = String::new();
    for i in 0..words {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&vocabulary[rng.random_range(0..vocabulary.len())]);
    }
    line
}

impl BatchReader<String> for Generator {
    fn name(&self) -> String {
        "generator".into()
    }

    fn read_batch(&mut self, slot: &BatchSlot, out: &mut BatchOut<String>) -> u64 {
        let Generator {
            config,
            vocabulary,
            partitions,
            slots,
        } = self;
        let total = config.words_in_batch(slot.index, slot.interval_ms);
        let n = *partitions as u64;
        let per_line = config.words_per_line as u64;
        for i in (0..n).filter(|i| (i % slot.peers as u64) as usize == slot.worker) {
            let words = total / n + u64::from(i < total % n);
            let lines = out.partition(i as u32);
            let s = slots
                .entry(i as u32)
                .or_insert_with(|| Slot::new(config, vocabulary, i as u32));
            lines.reserve((words / per_line + 1) as usize);
            for _ in 0..words / per_line {
                lines.push(s.pool[s.next_line].clone());
                s.next_line = (s.next_line + 1) % s.pool.len();
            }
            let rest = (words % per_line) as usize;
            if rest > 0 {
                lines.push(random_line(vocabulary, rest, &mut s.rng));
            }
        }
        0
    }
}
