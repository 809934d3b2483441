//! Shared test harness: run a pipeline over queued batches with 1 worker, 2 workers, 4
//! workers, or as 2 processes on loopback, and compare per-batch outputs: in exact order
//! ([`check_ordered`]) for Spark's ordered operations, as multisets ([`check`]) otherwise.
//!
//! Multi-process runs re-execute the test binary itself: the parent starts two children
//! (`--exact child_process_entry`) with the case name and the cluster in environment
//! variables; process 0 writes the collected batches to a file the parent reads.

#![allow(dead_code)]

#[cfg(feature = "kafka")]
pub mod kafka;

use std::fmt::Debug;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use sluice::source::BatchQueue;
use sluice::{Cluster, CollectedBatches, DStream, Data, StreamingConfig, StreamingContext};

/// How a case is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    OneWorker,
    TwoWorkers,
    FourWorkers,
    TwoProcesses,
}

pub const ALL: [Topology; 4] = [
    Topology::OneWorker,
    Topology::TwoWorkers,
    Topology::FourWorkers,
    Topology::TwoProcesses,
];

/// Per batch, the records' `Debug` renderings, in the order the output saw them.
pub type Batches = Vec<Vec<String>>;

pub fn config(batches: usize, cluster: Cluster) -> StreamingConfig {
    StreamingConfig::new(Duration::from_secs(1))
        .expect("1 s is a valid interval")
        .cluster(cluster)
        .as_fast_as_possible(2)
        .first_batch_ms(1000)
        .default_parallelism(2)
        .max_batches(batches as u64)
}

/// [`config`] on `workers` threads of one process.
pub fn on_workers(batches: usize, workers: usize) -> StreamingConfig {
    config(
        batches,
        Cluster {
            threads: workers,
            ..Cluster::default()
        },
    )
}

/// A job of 1 s batches run as fast as possible on `threads` workers for `batches` batches,
/// from 1000 ms; with `dir`, checkpointed there with a snapshot every 2 batches.
pub fn checkpointed(threads: usize, batches: u64, dir: Option<&Path>) -> StreamingConfig {
    let c = StreamingConfig::new(Duration::from_secs(1))
        .expect("valid")
        .threads(threads)
        .as_fast_as_possible(2)
        .first_batch_ms(1000)
        .max_batches(batches);
    match dir {
        Some(d) => c.checkpoint(d).checkpoint_interval(Duration::from_secs(2)),
        None => c,
    }
}

/// The batches where the output ran (every batch, or only the slide times of a window), each
/// in the order `collect_into` saw it (partitions in order).
fn normalize<O: Debug + Clone>(out: &CollectedBatches<O>) -> Batches {
    out.batches()
        .into_iter()
        .map(|(_, records)| records.iter().map(|x| format!("{x:?}")).collect())
        .collect()
}

/// Each batch sorted: for comparing multisets.
pub fn sorted(batches: &Batches) -> Batches {
    batches
        .iter()
        .map(|b| {
            let mut b = b.clone();
            b.sort();
            b
        })
        .collect()
}

/// Runs `f` over one queued input (two partitions per batch, as Spark's test streams).
pub fn run1<I: Data, O: Data + Debug>(
    input: Vec<Vec<I>>,
    cluster: Cluster,
    f: impl for<'s> Fn(DStream<'s, I>) -> DStream<'s, O> + Send + Sync + 'static,
) -> Batches {
    run1_sliced(input, 2, cluster, f)
}

/// Runs `f` over one queued input sliced into `partitions` partitions per batch (Spark's
/// `setupStreams(input, operation, numPartitions)`).
pub fn run1_sliced<I: Data, O: Data + Debug>(
    input: Vec<Vec<I>>,
    partitions: usize,
    cluster: Cluster,
    f: impl for<'s> Fn(DStream<'s, I>) -> DStream<'s, O> + Send + Sync + 'static,
) -> Batches {
    let n = input.len();
    let queue = BatchQueue::from_batches(input).partitions(partitions);
    let out = CollectedBatches::new();
    let (q, o) = (queue.clone(), out.clone());
    StreamingContext::new(config(n, cluster))
        .run(move |job| f(job.queue_stream(&q)).collect_into(&o))
        .expect("the job runs");
    normalize(&out)
}

/// Runs `f` over two queued inputs of the same number of batches.
pub fn run2<I: Data, J: Data, O: Data + Debug>(
    a: Vec<Vec<I>>,
    b: Vec<Vec<J>>,
    cluster: Cluster,
    f: impl for<'s> Fn(DStream<'s, I>, DStream<'s, J>) -> DStream<'s, O> + Send + Sync + 'static,
) -> Batches {
    let n = a.len().max(b.len());
    let (qa, qb) = (BatchQueue::from_batches(a), BatchQueue::from_batches(b));
    let out = CollectedBatches::new();
    let o = out.clone();
    StreamingContext::new(config(n, cluster))
        .run(move |job| {
            let x = job.queue_stream(&qa);
            let y = job.queue_stream(&qb);
            f(x, y).collect_into(&o)
        })
        .expect("the job runs");
    normalize(&out)
}

pub fn free_port() -> u16 {
    // Ports handed out once each within this test binary, below the kernel's ephemeral range:
    // a port the OS picks for `bind(0)` and that is released again can be picked again by a
    // concurrent test before a child process binds it (seen as "socket closed" at startup).
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 60) as u16 * 200;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::SeqCst) % 200;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs the named case as two processes of one worker each; returns process 0's output.
pub fn run_two_processes(case: &str, dir: &Path) -> Batches {
    run_two_processes_with(case, dir, &[])
}

/// [`run_two_processes`] with extra environment variables for the children.
pub fn run_two_processes_with(case: &str, dir: &Path, env: &[(&str, String)]) -> Batches {
    let hostfile = dir.join("hosts.txt");
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .expect("write the hostfile");
    let out = dir.join("out.json");
    let exe = std::env::current_exe().expect("the test binary");
    let mut children = Vec::new();
    for p in 0..2 {
        let child = Command::new(&exe)
            .args([
                "--exact",
                "child_process_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SLUICE_CASE", case)
            .env("SLUICE_PROCESS", p.to_string())
            .env("SLUICE_HOSTFILE", &hostfile)
            .env("SLUICE_OUT", &out)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn a child process");
        children.push(child);
        std::thread::sleep(Duration::from_millis(30));
    }
    for c in children {
        let output = c.wait_with_output().expect("wait for the child");
        assert!(
            output.status.success(),
            "child process of case {case} failed: {}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = std::fs::read_to_string(&out).expect("process 0 wrote its output");
    serde_json::from_str(&text).expect("valid output")
}

/// In a child process: the cluster from the environment, or None in a normal test run.
pub fn child_cluster() -> Option<(String, Cluster, String)> {
    let case = std::env::var("SLUICE_CASE").ok()?;
    let process: usize = std::env::var("SLUICE_PROCESS").ok()?.parse().ok()?;
    let hostfile = std::env::var("SLUICE_HOSTFILE").ok()?;
    let out = std::env::var("SLUICE_OUT").ok()?;
    let args = sluice::ClusterArgs {
        threads: 1,
        processes: 2,
        process,
        hostfile: Some(hostfile.into()),
    };
    let cluster = args.to_cluster().expect("a valid cluster");
    Some((
        case,
        cluster,
        if process == 0 { out } else { String::new() },
    ))
}

pub fn cluster_for(t: Topology) -> Cluster {
    match t {
        Topology::OneWorker => Cluster::default(),
        Topology::TwoWorkers => Cluster {
            threads: 2,
            ..Cluster::default()
        },
        Topology::FourWorkers => Cluster {
            threads: 4,
            ..Cluster::default()
        },
        Topology::TwoProcesses => unreachable!("run through run_two_processes"),
    }
}

/// Expected batches from literal records (rendered with `Debug`, in order).
pub fn expect<T: Debug>(batches: Vec<Vec<T>>) -> Batches {
    batches
        .into_iter()
        .map(|b| b.iter().map(|x| format!("{x:?}")).collect())
        .collect()
}

pub type CaseFn = Arc<dyn Fn(Cluster) -> Batches + Send + Sync>;

/// Runs the named case with every topology (2 processes through `run_two_processes`) and
/// compares each run's batches with `expected` as multisets (Spark's `useSet = true`); every
/// topology must also give the same order as one worker (sluice's own promise).
pub fn check(name: &str, expected: Batches, run_case: fn(&str, Cluster) -> Batches) {
    check_as(name, expected, run_case, false)
}

/// [`check`] in exact order (Spark's `useSet = false`: `map`, `glom`, `union`, …).
pub fn check_ordered(name: &str, expected: Batches, run_case: fn(&str, Cluster) -> Batches) {
    check_as(name, expected, run_case, true)
}

fn check_as(name: &str, expected: Batches, run_case: fn(&str, Cluster) -> Batches, ordered: bool) {
    let mut first: Option<Batches> = None;
    for topology in ALL {
        let got = match topology {
            Topology::TwoProcesses => {
                let dir = tempfile::tempdir().expect("a temp dir");
                run_two_processes(name, dir.path())
            }
            t => run_case(name, cluster_for(t)),
        };
        if ordered {
            assert_eq!(got, expected, "case {name} with {topology:?} (exact order)");
        } else {
            assert_eq!(
                sorted(&got),
                sorted(&expected),
                "case {name} with {topology:?}"
            );
        }
        match &first {
            None => first = Some(got),
            Some(one) => assert_eq!(
                &got, one,
                "case {name}: {topology:?} gave another order than one worker"
            ),
        }
        // The conformance table (`benches/conformance-table.sh`) is made of these lines.
        let how = if ordered { "exact order" } else { "multiset" };
        eprintln!("conformance\t{name}\t{topology:?}\t{how}\tok");
    }
}

/// The body of each test binary's `child_process_entry`: in a child process, runs its case and
/// (process 0) writes the batches for the parent; in a normal test run, does nothing.
pub fn child_entry(run_case: fn(&str, Cluster) -> Batches) {
    if let Some((case, cluster, out)) = child_cluster() {
        let got = run_case(&case, cluster);
        if !out.is_empty() {
            std::fs::write(&out, serde_json::to_string(&got).expect("serializable"))
                .expect("write the output");
        }
    }
}

/// Runs a job whose build function makes the stream to collect; its batches, normalized.
pub fn run_source<O: Data + Debug>(
    config: StreamingConfig,
    f: impl for<'s> Fn(&mut sluice::Job<'s>) -> DStream<'s, O> + Send + Sync + 'static,
) -> Batches {
    let out = CollectedBatches::new();
    let o = out.clone();
    StreamingContext::new(config)
        .run(move |job| f(job).collect_into(&o))
        .expect("the job runs");
    normalize(&out)
}

/// An example's binary, beside this test's (`target/<profile>/examples/<name>`).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test runs from target/<profile>/deps");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run the whole suite (`cargo test --workspace` builds the examples) or `cargo build --examples`",
        path.display()
    );
    path
}
