//! The paced TCP sender the socket benchmarks share: the same lines, the same pacing, whatever
//! engine reads them (sluice in the bench's process, Spark or Flink in a JVM of their own).
//!
//! The sender listens on a free loopback port, serves the first connection, and writes `rate`
//! lines/s from a fixed cycle of lines, at most 50 ms of input per write, so that an engine that
//! falls behind holds it back through TCP flow control and its lag shows at once.
//! [`run_wordcount`] is sluice's side: the course's word count reading from such a sender.

use std::io::Write;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Words per generated line (as `sluice feed --generate wordcount` and the course's examples).
pub const WORDS_PER_LINE: usize = 10;
/// Distinct words.
pub const VOCABULARY: u64 = 10_000;

/// Sets the allocator as the `sluice` binary sets it (`tune_allocator_for_batches` in
/// `dataflows/src/main.rs`: freed memory kept 10 s, no transparent huge pages), unless
/// `MIMALLOC_PURGE_DELAY` / `MIMALLOC_ALLOW_THP` say otherwise (for A/B runs in one build).
pub fn tune_allocator_for_batches() {
    // mimalloc v3's `mi_option_purge_delay` (15) and `mi_option_allow_thp` (43).
    for (option, variable, value) in [
        (15, "MIMALLOC_PURGE_DELAY", 10_000),
        (43, "MIMALLOC_ALLOW_THP", 0),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: sets one of mimalloc's options by its number; an unknown one is ignored.
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
}

/// 100 000 lines of 10 words (a fixed pseudo-random sequence), the sender's cycle.
pub fn lines() -> Vec<String> {
    let mut x = 7u64;
    (0..100_000)
        .map(|_| {
            (0..WORDS_PER_LINE)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    format!("w{}", (x >> 33) % VOCABULARY)
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The sender's cycle of lines as bytes.
pub type Wire = Arc<Vec<u8>>;

/// The lines as the bytes on the wire, one `\n` after each.
pub fn wire(lines: &[String]) -> Wire {
    Arc::new(
        lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect(),
    )
}

/// A running sender: its port, and how far behind its pace it is.
pub struct Sender {
    /// The loopback port it listens on.
    pub port: u16,
    done: Arc<AtomicBool>,
    lag: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    /// The sender thread's own CPU time when it ended, in clock ticks.
    cpu_ticks: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// CPU time (user + system) of `/proc/<what>/stat`, in clock ticks (`self`, `thread-self`).
pub fn cpu_ticks(what: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{what}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

/// This machine's cores and its load averages (1, 5, 15 minutes), for a bench's header.
pub fn machine() -> (usize, String) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    (
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load,
    )
}

/// Busy CPU time of the whole machine (`/proc/stat`: user, nice, system, irq, softirq,
/// steal), in clock ticks.
#[allow(dead_code)] // (used by the benches that check the machine is quiet)
pub fn busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu = stat.lines().next().unwrap_or_default();
    let f: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum()
}

/// Cores the machine's other processes kept busy since `machine_before` (from
/// [`busy_ticks`]) and `started`: all busy time less this process's (since `own_before`) and
/// a child's (`child_ticks`, its whole life).
#[allow(dead_code)]
pub fn foreign_load(
    machine_before: u64,
    own_before: u64,
    child_ticks: u64,
    started: Instant,
) -> f64 {
    let busy = busy_ticks().saturating_sub(machine_before);
    let own = cpu_ticks("self").saturating_sub(own_before) + child_ticks;
    busy.saturating_sub(own) as f64 / TICKS_PER_SEC / started.elapsed().as_secs_f64().max(1e-3)
}

/// Waits until the other processes of the machine use at most `max` cores over 3 s (nothing of
/// this bench runs meanwhile), or `timeout` has passed; the load of the last 3 s.
#[allow(dead_code)]
pub fn wait_quiet(max: f64, timeout: Duration) -> f64 {
    let deadline = Instant::now() + timeout;
    loop {
        let (before, own, started) = (busy_ticks(), cpu_ticks("self"), Instant::now());
        std::thread::sleep(Duration::from_secs(3));
        let load = foreign_load(before, own, 0, started);
        if load <= max || Instant::now() >= deadline {
            return load;
        }
        eprintln!("  waiting for a quiet machine: other processes use {load:.2} cores");
    }
}

/// Resident memory of `/proc/<pid>`, KiB.
#[allow(dead_code)]
pub fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `words` per CPU-second of `ticks`.
#[allow(dead_code)]
pub fn per_cpu_sec(words: u64, ticks: u64) -> Option<f64> {
    (ticks > 0).then(|| words as f64 / (ticks as f64 / TICKS_PER_SEC))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
#[allow(dead_code)] // (used by the benches that count CPU time)
pub const TICKS_PER_SEC: f64 = 100.0;

impl Sender {
    /// Starts listening; sends `rate` lines/s of `text` to the first connection, from the moment
    /// it connects.
    pub fn start(rate: u64, text: &Wire) -> Sender {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("port").port();
        let line_len = (text.len() / 100_000) as u64;
        let done = Arc::new(AtomicBool::new(false));
        let lag = Arc::new(AtomicU64::new(0));
        let sent_total = Arc::new(AtomicU64::new(0));
        let cpu = Arc::new(AtomicU64::new(0));
        let thread = {
            let (done, lag, text, sent_total, cpu) = (
                done.clone(),
                lag.clone(),
                text.clone(),
                sent_total.clone(),
                cpu.clone(),
            );
            std::thread::spawn(move || {
                let _cpu = CpuOnExit(cpu);
                listener
                    .set_nonblocking(true)
                    .expect("non-blocking listener");
                let mut conn = loop {
                    match listener.accept() {
                        Ok((c, _)) => break c,
                        Err(_) if done.load(Ordering::SeqCst) => return,
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                };
                conn.set_nonblocking(false).expect("blocking connection");
                let started = Instant::now();
                let mut sent = 0u64;
                let mut at = 0usize;
                while !done.load(Ordering::SeqCst) {
                    let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                    // At most 50 ms of input per write, so that lag is seen as it builds.
                    let n = due.saturating_sub(sent).min(rate / 20 + 1);
                    if n == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    let mut bytes = (n * line_len) as usize;
                    while bytes > 0 {
                        let end = (at + bytes).min(text.len());
                        if conn.write_all(&text[at..end]).is_err() {
                            return;
                        }
                        bytes -= end - at;
                        at = if end == text.len() { 0 } else { end };
                    }
                    sent += n;
                    sent_total.store(sent, Ordering::SeqCst);
                    lag.store(due.saturating_sub(sent), Ordering::SeqCst);
                }
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                lag.store(due.saturating_sub(sent), Ordering::SeqCst);
            })
        };
        Sender {
            port,
            done,
            lag,
            sent: sent_total,
            cpu_ticks: cpu,
            thread: Some(thread),
        }
    }

    /// The sender thread's CPU time, in clock ticks, once it has stopped.
    #[allow(dead_code)] // (used by the benches that count the job's CPU without the sender's)
    pub fn cpu_ticks(&self) -> u64 {
        self.cpu_ticks.load(Ordering::SeqCst)
    }

    /// Lines it was due to send and could not, now.
    pub fn lag_lines(&self) -> u64 {
        self.lag.load(Ordering::SeqCst)
    }

    /// Lines sent so far.
    #[allow(dead_code)] // (used by the compare bench, not by every bench that includes this)
    pub fn sent_lines(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Stops sending: the share of the lines due that it delivered, as of its last write, and
    /// the sender thread's CPU ticks.
    #[allow(dead_code)] // (used by the compare bench)
    pub fn stop_delivered(self) -> (f64, u64) {
        let (sent, lag) = (self.sent_lines(), self.lag_lines());
        let delivered = if sent + lag == 0 {
            0.0
        } else {
            sent as f64 / (sent + lag) as f64
        };
        let (_, ticks) = self.stop();
        (delivered, ticks)
    }

    /// Stops sending; the lag at that moment and the sender thread's CPU ticks.
    pub fn stop(mut self) -> (u64, u64) {
        let lag = self.lag_lines();
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (lag, self.cpu_ticks())
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

/// Records the thread's CPU time when the sender thread ends, however it ends.
struct CpuOnExit(Arc<AtomicU64>);

impl Drop for CpuOnExit {
    fn drop(&mut self) {
        self.0.store(cpu_ticks("thread-self"), Ordering::SeqCst);
    }
}

/// `batches` batches of 1 s on `threads` workers, `listener` hearing every batch.
pub fn one_second_batches(
    threads: usize,
    batches: u64,
    listener: impl sluice::listener::StreamingListener + 'static,
) -> sluice::StreamingConfig {
    sluice::StreamingConfig::new(Duration::from_secs(1))
        .expect("1 s is a batch interval")
        .cluster(sluice::Cluster {
            threads,
            ..sluice::Cluster::default()
        })
        .max_batches(batches)
        .listener(listener)
}

#[allow(dead_code)] // (used by the benches that run the word count in their own process)
/// The course's socket word count (`flatMap(split).map((_, 1)).reduceByKey(_ + _)`) on sluice,
/// `threads` workers, `batches` batches of 1 s, reading from `port` with `options`; `listener`
/// hears every batch.
pub fn run_wordcount(
    threads: usize,
    port: u16,
    batches: u64,
    options: sluice::source::SocketOptions,
    listener: impl sluice::listener::StreamingListener + 'static,
) {
    sluice::StreamingContext::new(one_second_batches(threads, batches, listener))
        .run(move |job| {
            // As `sluice run network-wordcount` splits: each word inline, moved straight into
            // the output (`SLUICE_BENCH_WORDS=smallvec`: a line's pairs collected on the stack
            // first, as before `sluice::text::words`, for comparing the two in one build).
            let lines = job.socket_text_stream_with("127.0.0.1", port, options.clone());
            let words = if std::env::var("SLUICE_BENCH_WORDS").as_deref() == Ok("smallvec") {
                lines.flat_map(|line| {
                    line.split_whitespace()
                        .map(|w| (sluice::CompactString::from(w), 1u64))
                        .collect::<smallvec::SmallVec<[_; 16]>>()
                })
            } else {
                lines.flat_map(|line| sluice::text::words(line).map(|w| (w, 1u64)))
            };
            words
                .reduce_by_key(|a, b| a + b)
                .foreach_batch(|_t, counts| {
                    std::hint::black_box(counts.len());
                })
        })
        .expect("the sluice job runs");
}

/// The largest rate (lines/s) that `trial` keeps up with: from `start` up by half until a rate
/// is not kept up with (or `max` is passed), then twice the geometric middle of the last rate
/// kept up with and the first one not. `trial(rate)` says whether the rate was kept up with and
/// what it measured, or `None` when the engine cannot run here. `Some(None)`: not even `start`.
pub fn largest_stable<R>(
    start: u64,
    max: u64,
    mut trial: impl FnMut(u64) -> Option<(bool, R)>,
) -> Option<Option<(u64, R)>> {
    let mut best: Option<(u64, R)> = None;
    let mut rate = start;
    let failed = loop {
        let (stable, measured) = trial(rate)?;
        if !stable {
            break rate;
        }
        best = Some((rate, measured));
        rate = rate * 3 / 2;
        if rate > max {
            return Some(best);
        }
    };
    let Some((good, _)) = best else {
        return Some(None);
    };
    let (mut good, mut bad) = (good, failed);
    for _ in 0..2 {
        let middle = ((good as f64 * bad as f64).sqrt() as u64) / 1000 * 1000;
        if middle <= good || middle >= bad {
            break;
        }
        let (stable, measured) = trial(middle)?;
        if stable {
            best = Some((middle, measured));
            good = middle;
        } else {
            bad = middle;
        }
    }
    Some(best)
}
