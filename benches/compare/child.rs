//! sluice's side of the compare bench: the bench run again as a child process
//! (`SLUICE_COMPARE_CHILD="<workload> <threads> <port> <batches>"`), running one of the course's
//! socket jobs and printing a line per finished batch in the form Spark's side prints
//! (`batch <ms> records <n> processing_ms <p> scheduling_ms <s>`), so that both are measured
//! alike from outside.

use std::io::Write;
use std::time::Duration;

use sluice::dstream::state::UpdateState;
use sluice::listener::{BatchInfo, StreamingListener};
use sluice::source::SocketOptions;
use sluice::{CompactString, DStream, Job};

/// The variable that makes the bench a child.
pub const CHILD: &str = "SLUICE_COMPARE_CHILD";

/// What a child runs.
pub struct Spec {
    workload: String,
    threads: usize,
    port: u16,
    batches: u64,
}

/// The child's job, when this process is one.
pub fn spec() -> Option<Spec> {
    let spec = std::env::var(CHILD).ok()?;
    let f: Vec<&str> = spec.split_whitespace().collect();
    Some(Spec {
        workload: f.first()?.to_string(),
        threads: f.get(1)?.parse().ok()?,
        port: f.get(2)?.parse().ok()?,
        batches: f.get(3)?.parse().ok()?,
    })
}

/// `(records, processing, scheduling delay)` of a batch line (sluice's or Spark's).
pub fn parse_batch(line: &str) -> Option<(u64, Duration, Duration)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.first() != Some(&"batch") || f.len() < 8 {
        return None;
    }
    let ms = |i: usize| f[i].parse().ok().map(Duration::from_millis);
    Some((f[3].parse().ok()?, ms(5)?, ms(7)?))
}

/// Prints every finished batch.
struct Printer;

impl StreamingListener for Printer {
    fn on_batch_completed(&self, b: &BatchInfo) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "batch {} records {} processing_ms {} scheduling_ms {}",
            b.batch_time.millis(),
            b.num_records(),
            b.processing_time.as_millis(),
            b.scheduling_delay.as_millis()
        );
        let _ = out.flush();
    }
}

/// The course's words: `flatMap(_.split("\\s+")).map((_, 1))`, as `sluice run` splits them
/// (each word inline, moved straight into the output: `sluice::text::words`).
fn words<'s>(job: &mut Job<'s>, port: u16) -> DStream<'s, (CompactString, u64)> {
    job.socket_text_stream_with("127.0.0.1", port, SocketOptions::default())
        .flat_map(|line| sluice::text::words(line).map(|w| (w, 1u64)))
}

/// Runs the child's job to its last batch, with the allocator set as the `sluice` binary sets
/// it ([`paced::tune_allocator_for_batches`](super::paced::tune_allocator_for_batches)).
pub fn run(spec: &Spec) {
    super::paced::tune_allocator_for_batches();
    let config = super::paced::one_second_batches(spec.threads, spec.batches, Printer);
    let (workload, port) = (spec.workload.clone(), spec.port);
    sluice::StreamingContext::new(config)
        .run(move |job| {
            let counted = match workload.as_str() {
                "state" => words(job, port)
                    .update_state_by_key_with(
                        UpdateState::new(|new: Vec<u64>, old: Option<u64>| {
                            Some(new.iter().sum::<u64>() + old.unwrap_or(0))
                        })
                        .pure()
                        .name("word-totals"),
                    )
                    .snapshots()
                    .count(),
                "window" => words(job, port)
                    .reduce_by_key_and_window(
                        |a, b| a + b,
                        Duration::from_secs(3),
                        Duration::from_secs(2),
                    )
                    .snapshots()
                    .count(),
                // (`SLUICE_BENCH_WORDS=string`: a `String` per word and a `Vec` per line, as
                // before words were kept inline, for comparing the two in one build.)
                _ if std::env::var("SLUICE_BENCH_WORDS").as_deref() == Ok("string") => job
                    .socket_text_stream_with("127.0.0.1", port, SocketOptions::default())
                    .flat_map(|line| {
                        line.split_whitespace()
                            .map(str::to_owned)
                            .collect::<Vec<_>>()
                    })
                    .map(|w| (w, 1u64))
                    .reduce_by_key(|a, b| a + b)
                    .count(),
                _ => words(job, port).reduce_by_key(|a, b| a + b).count(),
            };
            counted.foreach_batch(|_t, n| {
                std::hint::black_box(n);
            });
        })
        .expect("the sluice job runs");
}
