//! Word count on generated words at a given rate, printing each batch's timing.
//!
//! `cargo run --release --example wordcount_rate -- <words/s> <batch ms> <batches> [-w N]`

/// mimalloc, as in the `sluice` binary (glibc's malloc is the bottleneck of word counts).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use sluice::listener::{BatchInfo, StreamingListener};
use sluice::source::GeneratorConfig;
use sluice::{StreamingConfig, StreamingContext};

struct Show;
impl StreamingListener for Show {
    fn on_batch_completed(&self, b: &BatchInfo) {
        println!(
            "{}: {} lines, scheduling delay {:.1} ms, processing {:.1} ms",
            b.batch_time,
            b.num_records(),
            b.scheduling_delay.as_secs_f64() * 1e3,
            b.processing_time.as_secs_f64() * 1e3
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number =
        |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (rate, batch_ms, batches) = (number(0, 1_000_000), number(1, 1000), number(2, 5));
    let config = StreamingConfig::new(Duration::from_millis(batch_ms))?
        .cluster_from_args(args.iter().skip(3))?
        .max_batches(batches)
        .listener(Show);
    let generator = GeneratorConfig {
        rate_per_sec: rate,
        vocabulary: 10_000,
        words_per_line: 10,
        seed: 7,
    };
    StreamingContext::new(config).run(move |job| {
        job.generator(generator.clone())
            .flat_map(|line| {
                line.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .map(|w| (w, 1u64))
            .reduce_by_key(|a, b| a + b)
            .count()
            .print(1)
    })?;
    Ok(())
}
