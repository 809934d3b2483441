//! The socket receiver against real TCP servers on loopback: every line exactly once across
//! batch boundaries and server restarts; malformed lines set aside; a refused port retried.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use sluice::listener::BatchRecorder;
use sluice::source::{DeadLetters, SocketOptions};
use sluice::{CollectedBatches, StreamingConfig, StreamingContext, StreamingHandle};

fn start_job(
    port: u16,
    threads: usize,
    options: SocketOptions,
    out: &CollectedBatches<String>,
    recorder: &BatchRecorder,
) -> StreamingHandle {
    let config = StreamingConfig::new(Duration::from_millis(20))
        .unwrap()
        .threads(threads)
        .listener(recorder.clone());
    let o = out.clone();
    StreamingContext::new(config)
        .start(move |job| {
            job.socket_text_stream_with("127.0.0.1", port, options.clone())
                .repartition(threads)
                .collect_into(&o)
        })
        .unwrap()
}

fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(false).unwrap();
    let (s, _) = listener.accept().unwrap();
    s
}

/// Writes `lines` in uneven chunks, some split in the middle of a line, with short pauses so
/// that they straddle many batch boundaries.
fn send_lines(stream: &mut TcpStream, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut chunk = 1;
    while at < bytes.len() {
        let end = (at + chunk).min(bytes.len());
        stream.write_all(&bytes[at..end]).unwrap();
        at = end;
        chunk = (chunk * 7 + 13) % 4099 + 1;
        if chunk % 5 == 0 {
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    stream.flush().unwrap();
}

fn wait_for(out: &CollectedBatches<String>, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while out.values().iter().map(Vec::len).sum::<usize>() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn received(out: &CollectedBatches<String>) -> Vec<String> {
    out.values().into_iter().flatten().collect()
}

#[test]
fn every_line_arrives_exactly_once_across_batches_and_a_server_restart() {
    for threads in [1, 2] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let out = CollectedBatches::new();
        let recorder = BatchRecorder::new();
        let mut job = start_job(port, threads, SocketOptions::default(), &out, &recorder);

        let first: Vec<String> = (0..20_000).map(|i| format!("first {i}")).collect();
        let mut conn = accept(&listener);
        send_lines(&mut conn, &first);
        drop(conn);
        drop(listener); // the server goes away: the receiver retries with backoff

        std::thread::sleep(Duration::from_millis(300));
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let second: Vec<String> = (0..20_000).map(|i| format!("second {i}")).collect();
        let mut conn = accept(&listener);
        send_lines(&mut conn, &second);
        conn.write_all(b"last line without newline").unwrap();
        drop(conn);

        wait_for(&out, 40_001, Duration::from_secs(20));
        job.stop(true);
        job.await_termination().unwrap();

        let mut got = received(&out);
        let batches_with_data = out.values().iter().filter(|b| !b.is_empty()).count();
        got.sort();
        let mut want: Vec<String> = first.iter().chain(second.iter()).cloned().collect();
        want.push("last line without newline".into());
        want.sort();
        assert_eq!(
            got.len(),
            want.len(),
            "with {threads} workers: no line lost or duplicated"
        );
        assert_eq!(got, want);
        assert!(
            batches_with_data > 2,
            "the lines straddled batch boundaries ({batches_with_data} batches)"
        );
        let counted: u64 = recorder.batches().iter().map(|b| b.num_records()).sum();
        assert_eq!(counted, 40_001, "metrics count every line once");
    }
}

#[test]
fn malformed_lines_are_set_aside_and_the_job_goes_on() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let dead_path = dir.path().join("dead.tsv");
    let options = SocketOptions {
        max_line_bytes: 100,
        dead_letters: DeadLetters::to_file(&dead_path).unwrap(),
        ..SocketOptions::default()
    };
    let out = CollectedBatches::new();
    let recorder = BatchRecorder::new();
    let mut job = start_job(port, 1, options, &out, &recorder);
    let mut conn = accept(&listener);
    conn.write_all(b"good 1\n\xff\xfe bad bytes\ngood 2\n")
        .unwrap();
    conn.write_all(&vec![b'x'; 5000]).unwrap();
    conn.write_all(b"\ngood 3\n").unwrap();
    conn.flush().unwrap();
    wait_for(&out, 3, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(100));
    job.stop(true);
    job.await_termination().unwrap();
    assert_eq!(received(&out), vec!["good 1", "good 2", "good 3"]);
    let dead = std::fs::read_to_string(&dead_path).unwrap();
    let lines: Vec<&str> = dead.lines().collect();
    assert_eq!(lines.len(), 2, "{dead}");
    assert!(
        lines[0].contains("not UTF-8")
            && lines[0].contains("line 2")
            && lines[0].contains("\\xff\\xfe"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("longer than 100 bytes"), "{}", lines[1]);
    let malformed: u64 = recorder
        .batches()
        .iter()
        .flat_map(|b| b.inputs.iter())
        .map(|i| i.malformed)
        .sum();
    assert_eq!(
        malformed, 2,
        "malformed lines are counted in the batch metrics"
    );
}

#[test]
fn a_refused_port_is_retried_while_batches_go_on() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // nothing listens there now
    let out = CollectedBatches::new();
    let recorder = BatchRecorder::new();
    let mut job = start_job(port, 1, SocketOptions::default(), &out, &recorder);
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        recorder.batches().len() >= 5,
        "empty batches keep completing while the port refuses"
    );
    // A server appears later: its lines arrive.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut conn = accept(&listener);
    conn.write_all(b"late hello\n").unwrap();
    wait_for(&out, 1, Duration::from_secs(10));
    job.stop(true);
    job.await_termination().unwrap();
    assert_eq!(received(&out), vec!["late hello"]);
}

#[test]
fn a_batch_has_one_partition_per_block_interval_spread_over_the_workers() {
    use std::sync::{Arc, Mutex};
    // Three bursts 300 ms apart, with a 100 ms block interval: three blocks, one partition
    // each, in the order they arrived (Spark's BlockGenerator); block i runs on worker i % 2.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let clock = sluice::clock::ManualClock::new();
    let config = StreamingConfig::new(Duration::from_secs(1))
        .unwrap()
        .threads(2)
        .clock(clock.clone());
    let options = SocketOptions {
        block_interval: Duration::from_millis(100),
        ..SocketOptions::default()
    };
    let glommed = CollectedBatches::new();
    let placed = Arc::new(Mutex::new(Vec::new()));
    let (g, p) = (glommed.clone(), Arc::clone(&placed));
    let mut job = StreamingContext::new(config)
        .start(move |job| {
            let lines = job.socket_text_stream_with("127.0.0.1", port, options.clone());
            lines.glom().collect_into(&g);
            let p = Arc::clone(&p);
            lines.foreach_partition(move |partition, records| {
                p.lock()
                    .unwrap()
                    .push((partition.id.index(), partition.worker, records.len()));
            });
        })
        .unwrap();
    // The receiver starts with the first batch.
    clock.advance(Duration::from_secs(1));
    assert!(job.await_batch(sluice::Time::from_millis(1000), Duration::from_secs(10)));
    let mut conn = accept(&listener);
    for burst in ["a\nb\n", "c\n", "d\ne\n"] {
        conn.write_all(burst.as_bytes()).unwrap();
        conn.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    clock.advance(Duration::from_secs(1));
    assert!(job.await_batch(sluice::Time::from_millis(2000), Duration::from_secs(10)));
    job.stop(false);
    job.await_termination().unwrap();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        glommed.batch_ms(2000),
        vec![s(&["a", "b"]), s(&["c"]), s(&["d", "e"])]
    );
    let mut placed = placed.lock().unwrap().clone();
    placed.sort();
    assert_eq!(placed, vec![(0, 0, 2), (1, 1, 1), (2, 0, 2)]);
}

/// The receiver's part of every recorded batch.
fn receiver_inputs(recorder: &BatchRecorder) -> Vec<sluice::listener::ReceiverInput> {
    recorder
        .batches()
        .iter()
        .flat_map(|b| b.inputs.iter().filter_map(|i| i.receiver.clone()))
        .collect()
}

/// Floods a receiver with `lines` lines as fast as loopback goes, against a job of `interval`
/// batches that counts them and spends `per_batch` on every batch; checks that every line is
/// counted once and returns what the receiver reported for each batch.
fn flood(
    lines: u64,
    interval: Duration,
    options: SocketOptions,
    per_batch: Duration,
) -> Vec<sluice::listener::ReceiverInput> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorder = BatchRecorder::new();
    let config = StreamingConfig::new(interval)
        .unwrap()
        .listener(recorder.clone());
    let counted = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&counted);
    let mut job = StreamingContext::new(config)
        .start(move |job| {
            let c = Arc::clone(&c);
            job.socket_text_stream_with("127.0.0.1", port, options.clone())
                .count()
                .foreach_batch(move |_, n| {
                    std::thread::sleep(per_batch);
                    c.fetch_add(n.iter().sum::<u64>(), Ordering::SeqCst);
                });
        })
        .unwrap();
    let mut conn = accept(&listener);
    let sender = std::thread::spawn(move || {
        let line = "the quick brown fox jumps over the lazy dog again and again\n";
        let chunk = line.repeat(1000);
        for _ in 0..lines / 1000 {
            conn.write_all(chunk.as_bytes()).unwrap();
        }
        conn.flush().unwrap();
        conn
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while counted.load(Ordering::SeqCst) < lines && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _conn = sender.join().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    job.stop(false);
    job.await_termination().unwrap();
    assert_eq!(counted.load(Ordering::SeqCst), lines, "every line once");
    let inputs = receiver_inputs(&recorder);
    assert_eq!(inputs.iter().map(|r| r.lines).sum::<u64>(), lines);
    inputs
}

#[test]
fn a_receiver_fed_faster_than_the_job_holds_its_sender_back_within_its_bound() {
    // A sender as fast as loopback against a job that spends 40 ms on every 50 ms batch: the
    // buffer fills, the receiver stops reading, TCP blocks the sender; no batch holds more
    // than the bound (plus one read's lines), every line is counted once, and the batches say
    // how long the sender was held back.
    const BOUND: usize = 256 << 10;
    let options = SocketOptions::default().max_buffered_bytes(BOUND);
    let inputs = flood(
        100_000,
        Duration::from_millis(50),
        options,
        Duration::from_millis(40),
    );
    let largest = inputs.iter().map(|r| r.bytes).max().unwrap();
    // One read is at most 64 KiB of 60-byte lines: ~1 100 lines of ~85 bytes each.
    assert!(
        largest <= (BOUND + (128 << 10)) as u64,
        "a batch took {largest} bytes, over the bound {BOUND}"
    );
    assert!(inputs.iter().all(|r| r.max_buffered_bytes == BOUND as u64));
    let held: u64 = inputs.iter().map(|r| r.held_back_ms).sum();
    assert!(held >= 100, "the sender was held back: {held} ms in all");
}

#[test]
fn a_bound_that_follows_the_job_grows_with_what_it_processes() {
    // The same flood, against a job that keeps up: a bound that follows the job starts at its
    // floor (256 KiB here) and rises to twice what the job processes in a batch interval, so
    // the batches after the first ones are no longer capped at the floor. (The job spends
    // 5 ms on every batch, so that every batch is measured.)
    use sluice::source::BufferBound;
    const FLOOR: usize = 256 << 10;
    let options = SocketOptions {
        buffer: BufferBound::FollowJob {
            floor: FLOOR,
            ceiling: 64 << 20,
        },
        ..SocketOptions::default()
    };
    let inputs = flood(
        200_000,
        Duration::from_millis(200),
        options,
        Duration::from_millis(5),
    );
    let bounds: Vec<u64> = inputs.iter().map(|r| r.max_buffered_bytes).collect();
    assert_eq!(
        bounds[0], FLOOR as u64,
        "the floor until a batch is measured"
    );
    let highest = *bounds.iter().max().unwrap();
    assert!(
        highest > 4 * FLOOR as u64,
        "the bound followed the job: {bounds:?}"
    );
    let largest = inputs.iter().map(|r| r.bytes).max().unwrap();
    assert!(
        largest > FLOOR as u64 + (128 << 10),
        "batches beyond the floor: {largest} bytes"
    );
}

#[test]
fn max_rate_paces_the_receiver() {
    // 3 000 lines sent at once to a receiver limited to 4 000 lines/s: they arrive over at
    // least ~0.7 s (0.75 s less one 50 ms hand-over), in order, each once.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let recorder = BatchRecorder::new();
    let out = CollectedBatches::new();
    let mut job = start_job(
        port,
        1,
        SocketOptions::default().max_rate(4000),
        &out,
        &recorder,
    );
    let mut conn = accept(&listener);
    let lines: Vec<String> = (0..3000).map(|i| format!("line {i}")).collect();
    let started = Instant::now();
    conn.write_all(
        lines
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .as_bytes(),
    )
    .unwrap();
    conn.flush().unwrap();
    wait_for(&out, lines.len(), Duration::from_secs(30));
    let took = started.elapsed();
    job.stop(false);
    job.await_termination().unwrap();
    assert_eq!(received(&out), lines);
    assert!(
        took >= Duration::from_millis(650),
        "3 000 lines at 4 000/s took {took:?}"
    );
    let inputs = receiver_inputs(&recorder);
    assert!(inputs.iter().all(|r| r.rate_limit == Some(4000)));
    assert!(inputs.iter().map(|r| r.held_back_ms).sum::<u64>() >= 400);
}

mod common;
#[path = "socket/examples.rs"]
mod examples;
