//! The `category-top3` job (course §6) at 100 000 lines per 1 s batch with 1 000 brands in 20
//! categories: processing time per batch (p50, max) of sluice, cut back to back, for the same
//! input as `benches/spark/run.sh sql` gives Spark's `StreamingIntegerationSQL`.
//!
//! `cargo bench --bench category_top3 [-- BATCHES WORKERS]` (default 30 batches, 1 worker).
//! Lines are `id brand<k> category<k % 20>` with `k` from a fixed-seed generator, made per
//! partition in the source (as Spark's side makes them in its tasks).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice::listener::{BatchInfo, StreamingListener};
use sluice::source::{BatchOut, BatchReader, BatchSlot};
use sluice::sql::arrow::datatypes::{DataType, Field, Schema};
use sluice::{StreamingConfig, StreamingContext};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const LINES: u64 = 100_000;
const BRANDS: u64 = 1_000;

const TOP3: &str = "select t.category, t.brand, t.sales, t.rank from (
  select category, brand, sales,
    row_number() over (partition by category order by sales desc, brand) as rank
  from tmp_category_brand_sales) t
where t.rank < 4 order by t.category, t.rank";

#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<BatchInfo>>>);

impl StreamingListener for Timeline {
    fn on_batch_completed(&self, b: &BatchInfo) {
        if let Ok(mut t) = self.0.lock() {
            t.push(b.clone());
        }
    }
}

/// `LINES` sales lines per batch in 2 partitions (Spark's side uses 2 as well).
struct Sales;

impl BatchReader<String> for Sales {
    fn name(&self) -> String {
        "sales".into()
    }
    fn read_batch(&mut self, slot: &BatchSlot, out: &mut BatchOut<String>) -> u64 {
        for p in 0..2u32 {
            if p as usize % slot.peers != slot.worker {
                continue;
            }
            let mut x = slot.index * 2 + p as u64 + 1;
            let part = out.partition(p);
            for i in 0..LINES / 2 {
                // xorshift; the Java side draws from java.util.Random (same distribution).
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = x % BRANDS;
                part.push(format!("{i} brand{k} category{}", k % 20));
            }
        }
        0
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Row {
    category: String,
    brand: String,
    sales: i64,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let batches: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(30);
    let workers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let timeline = Timeline::default();
    let config = StreamingConfig::new(Duration::from_secs(1))
        .expect("interval")
        .as_fast_as_possible(1)
        .threads(workers)
        .max_batches(batches)
        .listener(timeline.clone());
    let schema = Arc::new(Schema::new(vec![
        Field::new("category", DataType::Utf8, false),
        Field::new("brand", DataType::Utf8, false),
        Field::new("sales", DataType::Int64, false),
    ]));
    let shown = Arc::new(Mutex::new(0usize));
    let s = shown.clone();
    StreamingContext::new(config)
        .run(move |job| {
            let s = s.clone();
            job.source(Sales)
                .flat_map(|line: String| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    (f.len() == 3).then(|| (format!("{}_{}", f[2], f[1]), 1u64))
                })
                .update_state_by_key_with(
                    sluice::dstream::state::UpdateState::new(|new: Vec<u64>, old: Option<u64>| {
                        Some(new.iter().sum::<u64>() + old.unwrap_or(0))
                    })
                    .pure(),
                )
                .snapshots()
                .map(|(cb, n): (String, u64)| {
                    let (c, b) = cb.split_once('_').unwrap_or((cb.as_str(), ""));
                    Row {
                        category: c.into(),
                        brand: b.into(),
                        sales: n as i64,
                    }
                })
                .sql("tmp_category_brand_sales", schema.clone(), TOP3)
                .foreach_batch(move |_, tables| {
                    // What show(20) would print, built (not printed).
                    let text: usize = tables.iter().map(|t| t.show(20).len()).sum();
                    if let Ok(mut s) = s.lock() {
                        *s += text;
                    }
                });
        })
        .expect("run");
    let t = timeline.0.lock().map(|t| t.clone()).unwrap_or_default();
    let mut ms: Vec<f64> = t
        .iter()
        .skip(1)
        .map(|b| b.processing_time.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let p50 = ms.get(ms.len() / 2).copied().unwrap_or(0.0);
    let max = ms.last().copied().unwrap_or(0.0);
    println!(
        "load average: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "| sluice category-top3, {LINES} lines/batch, {BRANDS} brands, -w {workers} | p50 processing | max processing | batches measured |"
    );
    println!("|---|---|---|---|");
    println!("| sql | {p50:.0} ms | {max:.0} ms | {} |", ms.len());
}
