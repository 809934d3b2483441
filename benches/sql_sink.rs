//! SQL sink throughput: the same 100 000 rows `(id BIGINT, name TEXT)` written into PostgreSQL
//! in one transaction three ways, in one run, alternating, 3 rounds:
//!
//! - **row by row**: the sink with a statement it cannot rewrite (`INSERT … SELECT $1, $2`),
//!   one execute per row, as every SQL sink ran before;
//! - **multi-row**: the sink with the course's upsert (`INSERT … VALUES ($1, $2) ON CONFLICT
//!   (id) DO UPDATE …`), which it runs 1 000 rows per statement;
//! - **psql \copy**: the same rows from a CSV file with PostgreSQL's own bulk path, the reference.
//!
//! Prints rows/s per round, the medians and the ratios, and the machine's load.
//! Run with `cargo bench --bench sql_sink` (PostgreSQL on 127.0.0.1:5432, `psql` on the PATH).

use std::time::Instant;

use sluice::sink::{SqlSink, SqlValue};

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const ROWS: i64 = 100_000;

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn psql(sql: &str) {
    let ok = std::process::Command::new("psql")
        .args([URL, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "psql -c {sql} failed");
}

fn fresh(table: &str) {
    psql(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT)"
    ));
}

/// Rows/s of the sink writing `rows` with `statement` into a fresh `table`.
fn sink(table: &str, statement: &str, rows: &[Vec<SqlValue>]) -> f64 {
    fresh(table);
    let mut sink = SqlSink::new(URL, vec![], statement).expect("sink");
    let started = Instant::now();
    sink.write_rows(rows, || false).expect("write");
    ROWS as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rows: Vec<Vec<SqlValue>> = (0..ROWS)
        .map(|i| {
            vec![
                SqlValue::Int(i),
                SqlValue::from(format!("name{i}").as_str()),
            ]
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("rows.csv");
    let text: String = (0..ROWS).map(|i| format!("{i},name{i}\n")).collect();
    std::fs::write(&csv, text).expect("csv");
    let table = "sluice_bench_sql";
    println!("load before: {}", load());
    let (mut by_row, mut multi, mut copy) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=3 {
        by_row.push(sink(
            table,
            &format!("INSERT INTO {table} (id, name) SELECT $1, $2"),
            &rows,
        ));
        multi.push(sink(
            table,
            &format!("INSERT INTO {table} (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name"),
            &rows,
        ));
        fresh(table);
        let started = Instant::now();
        psql(&format!(
            "\\copy {table} (id, name) FROM '{}' WITH (FORMAT csv)",
            csv.display()
        ));
        copy.push(ROWS as f64 / started.elapsed().as_secs_f64());
        println!(
            "round {round}: row by row {:.0} rows/s, multi-row {:.0} rows/s, psql \\copy {:.0} rows/s",
            by_row[round - 1],
            multi[round - 1],
            copy[round - 1]
        );
    }
    psql(&format!("DROP TABLE IF EXISTS {table}"));
    let (r, m, c) = (median(by_row), median(multi), median(copy));
    println!();
    println!(
        "| {ROWS} rows into PostgreSQL, one transaction | rows/s (median of 3) | vs psql \\copy |"
    );
    println!("|---|---|---|");
    println!("| sink, row by row (before) | {r:.0} | {:.3} |", r / c);
    println!("| sink, multi-row upsert (now) | {m:.0} | {:.3} |", m / c);
    println!("| psql \\copy (reference) | {c:.0} | 1.000 |");
    println!("multi-row / row by row: {:.1}×", m / r);
    println!("load after: {}", load());
}
