//! A generator of random words at a set rate, for demos and benchmarks (like Spark's
//! `RateStreamSource`, but producing text lines for word counts).
//!
//! Batch `k` holds exactly `floor(rate × (k+1) × interval) − floor(rate × k × interval)` words
//! (interval in seconds) over all workers, split evenly, as lines of `words_per_line` words
//! drawn from a vocabulary of `vocabulary` distinct words with a seeded random generator.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::{BatchReader, BatchSlot};

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
    /// Seed of the random generator (each worker adds its index).
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
/// use sluice::source::{BatchReader, BatchSlot, Generator, GeneratorConfig};
/// let mut g = Generator::new(GeneratorConfig { rate_per_sec: 100, ..Default::default() }, 0);
/// let slot = BatchSlot { time: sluice::Time::from_millis(1000), interval_ms: 1000, index: 0, worker: 0, peers: 1, last: false };
/// let mut lines = Vec::new();
/// g.read_batch(&slot, &mut lines);
/// assert_eq!(lines.iter().map(|l| l.split(' ').count()).sum::<usize>(), 100);
/// ```
pub struct Generator {
    config: GeneratorConfig,
    vocabulary: Vec<String>,
    pool: Vec<String>,
    next_line: usize,
    rng: SmallRng,
}

impl Generator {
    /// The generator of worker `worker` (each worker has its own seed).
    pub fn new(mut config: GeneratorConfig, worker: usize) -> Self {
        config.vocabulary = config.vocabulary.max(1);
        config.words_per_line = config.words_per_line.max(1);
        let vocabulary: Vec<String> = (0..config.vocabulary).map(word).collect();
        let mut rng = SmallRng::seed_from_u64(config.seed.wrapping_add(worker as u64));
        // A pool of ready lines, reused round robin, keeps the generator's own cost low.
        let pool = (0..4096)
            .map(|_| random_line(&vocabulary, config.words_per_line, &mut rng))
            .collect();
        Generator {
            config,
            vocabulary,
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

    fn read_batch(&mut self, slot: &BatchSlot, out: &mut Vec<String>) -> u64 {
        let total = self.config.words_in_batch(slot.index, slot.interval_ms);
        let peers = slot.peers as u64;
        let mine = total / peers + u64::from((slot.worker as u64) < total % peers);
        let per_line = self.config.words_per_line as u64;
        for _ in 0..mine / per_line {
            out.push(self.pool[self.next_line].clone());
            self.next_line = (self.next_line + 1) % self.pool.len();
        }
        let rest = (mine % per_line) as usize;
        if rest > 0 {
            out.push(random_line(&self.vocabulary, rest, &mut self.rng));
        }
        0
    }
}
