//! The compare bench's results: every run's value per measure and engine, printed as medians
//! with min–max and ratios of medians.

use std::collections::BTreeMap;

use super::{Engine, Trial};

/// Values per `(measure, engine)`, in the order they were measured.
#[derive(Default)]
pub struct Results {
    values: BTreeMap<(String, String), (Engine, Vec<f64>)>,
}

/// The measures, how to print them, and whether more is better.
const MEASURES: [(&str, &str, &str, bool); 8] = [
    (
        "stable-rate",
        "socket word count: largest stable rate",
        "M words/s",
        true,
    ),
    (
        "cpu",
        "socket word count: words per CPU-second at 2 M words/s",
        "M",
        true,
    ),
    (
        "socket-rss",
        "socket word count: peak memory at 2 M words/s",
        "MiB",
        false,
    ),
    (
        "state-p50",
        "updateStateByKey, 10 000 words, 1 M words/s: p50 processing",
        "ms",
        false,
    ),
    ("state-p90", "the same: p90 processing", "ms", false),
    ("state-rss", "the same: peak memory", "MiB", false),
    (
        "window-per-2s",
        "reduceByKeyAndWindow 3 s / 2 s, 1 M words/s: processing per 2 s of input",
        "ms",
        false,
    ),
    ("window-rss", "the same: peak memory", "MiB", false),
];

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

impl Results {
    /// Adds one run's value.
    pub fn add(&mut self, measure: &str, engine: Engine, value: f64) {
        self.values
            .entry((measure.to_owned(), engine.key()))
            .or_insert_with(|| (engine, Vec::new()))
            .1
            .push(value);
    }

    /// Adds a state or window trial's measures.
    pub fn add_trial(&mut self, workload: &str, engine: Engine, t: &Trial) {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        if workload == "state" {
            for (m, p) in [("state-p50", 0.5), ("state-p90", 0.9)] {
                if let Some(d) = t.percentile(p) {
                    self.add(m, engine, ms(d));
                }
            }
        } else if let Some(d) = t.per_two_seconds {
            self.add("window-per-2s", engine, ms(d));
        }
        self.add(&format!("{workload}-rss"), engine, t.peak_rss_mib);
    }

    fn get(&self, measure: &str, engine: &str) -> Option<&Vec<f64>> {
        self.values
            .get(&(measure.to_owned(), engine.to_owned()))
            .map(|(_, v)| v)
    }

    /// The table, then `RESULT <measure> <engine> <median>` lines.
    pub fn print(&self) {
        let engines = ["sluice-w1", "sluice-w2", "spark", "flink"];
        println!(
            "| measure | sluice -w 1 | sluice -w 2 | Spark 4.3 local[2] | Flink 2.3 p=2 | sluice -w 1 vs Spark | sluice -w 2 vs Spark | sluice -w 1 vs Flink |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (key, label, unit, more_is_better) in MEASURES {
            let scale = if unit.starts_with('M') && unit != "MiB" {
                1e6
            } else {
                1.0
            };
            let cell = |e: &str| match self.get(key, e) {
                Some(v) if !v.is_empty() => {
                    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    format!(
                        "{:.2} ({:.2}–{:.2}, n={}) {unit}",
                        median(v) / scale,
                        lo / scale,
                        hi / scale,
                        v.len()
                    )
                }
                _ => "–".into(),
            };
            let ratio = |a: &str, b: &str| match (self.get(key, a), self.get(key, b)) {
                (Some(x), Some(y)) if !x.is_empty() && !y.is_empty() => {
                    let (x, y) = (median(x), median(y));
                    let r = if more_is_better { x / y } else { y / x };
                    if r.is_finite() {
                        format!("{r:.1}×")
                    } else {
                        "–".into()
                    }
                }
                _ => "–".into(),
            };
            if engines.iter().all(|e| self.get(key, e).is_none()) {
                continue;
            }
            println!(
                "| {label} | {} | {} | {} | {} | {} | {} | {} |",
                cell(engines[0]),
                cell(engines[1]),
                cell(engines[2]),
                cell(engines[3]),
                ratio(engines[0], engines[2]),
                ratio(engines[1], engines[2]),
                ratio(engines[0], engines[3]),
            );
        }
        println!(
            "\n(ratios: the engine's advantage, sluice's median over the peer's for rates, the peer's over sluice's for times and memory)\n"
        );
        for ((measure, engine), (_, v)) in &self.values {
            if !v.is_empty() {
                println!("RESULT {measure} {engine} {:.3}", median(v));
            }
        }
    }
}
