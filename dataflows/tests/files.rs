//! `sluice run file-wordcount` on real directories: files renamed in, written slowly, copied,
//! moved in with an old time, compressed, and arriving while batches run; a SIGKILL and
//! restart with a checkpoint; the same job on a real S3-protocol server (moto), with objects
//! by the thousand, a multipart upload in progress, and wrong credentials.

mod common;
#[path = "files/s3.rs"]
mod s3;
#[path = "files/s3_operator.rs"]
mod s3_operator;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::{Proc, batches, sluice, totals, wait_until};
use s3::{S3Server, block_on};

fn expect(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(w, n)| (w.to_string(), *n)).collect()
}

fn words(word: &str, n: usize) -> String {
    let mut s = vec![word; n].join(" ");
    s.push('\n');
    s
}

fn file_job(dir: &str, extra: &[&str]) -> Proc {
    let mut cmd = sluice();
    cmd.args([
        "run",
        "file-wordcount",
        "--dir",
        dir,
        "--batch",
        "200ms",
        "--print",
        "100000",
        "--ui",
        "off",
    ])
    .args(extra);
    Proc::spawn(cmd)
}

/// Waits for the job's first batch (it has listed the directory once).
fn started(job: &Proc) {
    assert!(
        wait_until(Duration::from_secs(30), || job
            .out
            .lock()
            .unwrap()
            .contains("Time: ")),
        "no batch within 30 s: {}",
        job.err()
    );
}

fn wait_for_totals(job: &Proc, want: &BTreeMap<String, u64>, within: Duration) -> bool {
    wait_until(within, || {
        &totals(&batches(&job.out.lock().unwrap())) == want
    })
}

#[test]
fn local_files_are_read_once_when_complete_however_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("before.txt"), words("old", 2)).unwrap();
    let mut job = file_job(d.to_str().unwrap(), &[]);
    started(&job);

    // Written under a hidden name, then renamed in (the atomic way).
    std::fs::write(d.join(".incoming-a"), words("alpha", 2)).unwrap();
    std::fs::rename(d.join(".incoming-a"), d.join("a.txt")).unwrap();
    // Moved in from elsewhere with a modification time of 2001 (Spark skips such a file).
    let c = outside.path().join("c.txt");
    std::fs::write(&c, words("gamma", 3)).unwrap();
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&c)
        .unwrap()
        .set_modified(old)
        .unwrap();
    std::fs::rename(&c, d.join("c.txt")).unwrap();
    // Copied in.
    let src = outside.path().join("d-src.txt");
    std::fs::write(&src, words("delta", 2)).unwrap();
    std::fs::copy(&src, d.join("d.txt")).unwrap();
    // Compressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(words("epsilon", 4).as_bytes()).unwrap();
    std::fs::write(d.join("e.txt.gz"), gz.finish().unwrap()).unwrap();
    // Written slowly, in place: 5 pieces 400 ms apart (several batches), each piece shorter
    // than the 1 s quiet time. Never read in part.
    let mut slow = std::fs::File::create(d.join("b.txt")).unwrap();
    for _ in 0..5 {
        slow.write_all(words("beta", 20).as_bytes()).unwrap();
        slow.flush().unwrap();
        std::thread::sleep(Duration::from_millis(400));
    }
    drop(slow);
    // Many small files while batches run.
    for i in 0..50 {
        std::fs::write(d.join(format!("f{i:02}.txt")), words("zeta", 1)).unwrap();
        if i % 10 == 0 {
            std::thread::sleep(Duration::from_millis(150));
        }
    }
    let want = expect(&[
        ("alpha", 2),
        ("beta", 100),
        ("delta", 2),
        ("epsilon", 4),
        ("gamma", 3),
        ("zeta", 50),
    ]);
    let arrived = wait_for_totals(&job, &want, Duration::from_secs(30));
    // A few more batches: nothing is read twice.
    job.expect_more_batches(7);
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    let out = job.out.lock().unwrap().clone();
    let got = batches(&out);
    assert!(
        arrived,
        "totals never matched: {:?}\n{}",
        totals(&got),
        job.err()
    );
    assert_eq!(totals(&got), want, "{}", job.err());
    let beta: Vec<u64> = got
        .values()
        .filter_map(|w| w.get("beta").copied())
        .collect();
    assert_eq!(beta, [100], "the slow file was read in one piece");
}

#[test]
fn marker_files_gate_a_file_and_globs_choose_among_nested_directories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("2026/12")).unwrap();
    let mut job = file_job(
        d.to_str().unwrap(),
        &[
            "--complete-when",
            "marker:.done",
            "--glob",
            "**/*.log",
            "-w",
            "2",
        ],
    );
    started(&job);
    std::fs::write(d.join("2026/12/a.log"), words("gated", 3)).unwrap();
    std::fs::write(d.join("2026/12/b.log"), words("gated", 2)).unwrap();
    std::fs::write(d.join("2026/12/b.log.done"), "").unwrap();
    std::fs::write(d.join("2026/12/skip.txt"), words("skipped", 1)).unwrap();
    std::fs::write(d.join("2026/12/skip.txt.done"), "").unwrap();
    assert!(wait_for_totals(
        &job,
        &expect(&[("gated", 2)]),
        Duration::from_secs(20)
    ));
    job.expect_more_batches(4);
    assert_eq!(
        totals(&batches(&job.out.lock().unwrap())),
        expect(&[("gated", 2)]),
        "a.log read before its marker, or b.log not after its"
    );
    std::fs::write(d.join("2026/12/a.log.done"), "").unwrap();
    let want = expect(&[("gated", 5)]);
    let arrived = wait_for_totals(&job, &want, Duration::from_secs(20));
    job.expect_more_batches(3);
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    assert!(arrived, "{}", job.err());
    assert_eq!(totals(&batches(&job.out.lock().unwrap())), want);
}

#[test]
fn a_restart_after_sigkill_reads_every_file_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let args = [
        "--checkpoint",
        ck.path().to_str().unwrap(),
        "--checkpoint-interval",
        "1s",
        "--complete-when",
        "visible",
    ];
    let mut runs = Vec::new();
    let mut job = file_job(d.to_str().unwrap(), &args);
    started(&job);
    // Files arrive all along, by atomic rename, each with a word of its own.
    let writer_dir = d.clone();
    let writer = std::thread::spawn(move || {
        for i in 0..120u64 {
            let tmp = writer_dir.join(format!(".w{i}"));
            std::fs::write(&tmp, words(&format!("w{i}"), (i % 4 + 1) as usize)).unwrap();
            std::fs::rename(&tmp, writer_dir.join(format!("w{i:03}.txt"))).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    std::thread::sleep(Duration::from_millis(2500));
    job.signal("-KILL");
    runs.push(job.out.lock().unwrap().clone());
    let mut job = file_job(d.to_str().unwrap(), &args);
    writer.join().unwrap();
    let want: BTreeMap<String, u64> = (0..120u64).map(|i| (format!("w{i}"), i % 4 + 1)).collect();
    // A batch printed by both runs (printed, then killed before it was committed) has the
    // same content in both: its plan was replayed.
    let merged = |runs: &[String]| {
        let mut all: BTreeMap<u64, BTreeMap<String, u64>> = BTreeMap::new();
        for run in runs {
            for (t, w) in batches(run) {
                if let Some(before) = all.get(&t) {
                    if !w.is_empty() || !before.is_empty() {
                        assert_eq!(before, &w, "batch {t} differs between runs");
                    }
                }
                all.insert(t, w);
            }
        }
        all
    };
    let done = wait_until(Duration::from_secs(40), || {
        let mut r = runs.clone();
        r.push(job.out.lock().unwrap().clone());
        totals(&merged(&r)) == want
    });
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    runs.push(job.out.lock().unwrap().clone());
    let got = totals(&merged(&runs));
    let missing: Vec<_> = want
        .iter()
        .filter(|(w, n)| got.get(*w) != Some(n))
        .collect();
    assert!(
        done,
        "wrong or missing: {missing:?}\n{}\n--- first run:\n{}",
        job.err(),
        runs[0]
    );
    assert_eq!(got, want, "every file exactly once across the crash");
}

#[test]
fn directories_that_cannot_be_watched_are_configuration_mistakes() {
    for (dir, says) in [
        ("/no/such/directory", "/no/such/directory"),
        ("gopher://host/dir", "gopher://"),
        ("hdfs://127.0.0.1:1/in", "hdfs"),
    ] {
        let out = common::run(&[
            "run",
            "file-wordcount",
            "--dir",
            dir,
            "--max-batches",
            "2",
            "--ui",
            "off",
        ]);
        let err = common::text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{dir}: {err}");
        assert!(err.contains(says), "{dir}: {err}");
    }
    let out = common::run(&[
        "run",
        "file-wordcount",
        "--dir",
        "/tmp",
        "--complete-when",
        "soon",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::text(&out.stderr).contains("quiet:DURATION"));
}

#[test]
fn s3_objects_are_read_once_multipart_uploads_only_when_complete() {
    use object_store::{ObjectStoreExt, PutPayload};
    let s3 = S3Server::start(false);
    s3.create_bucket("inbox");
    let store = s3.store("inbox");
    let put = |key: &str, body: String| {
        block_on(store.put(&key.into(), PutPayload::from(body.into_bytes()))).unwrap();
    };
    put("logs/before.txt", words("old", 1));
    put("elsewhere/x.txt", words("outside", 1));
    let mut cmd = sluice();
    cmd.args([
        "run",
        "file-wordcount",
        "--dir",
        "s3://inbox/logs",
        "--batch",
        "300ms",
        "--print",
        "100000",
        "--ui",
        "off",
    ]);
    s3.env(&mut cmd);
    let mut job = Proc::spawn(cmd);
    started(&job);
    // More objects than one listing page (1 000) holds.
    for i in 0..1200 {
        put(&format!("logs/o{i:04}.txt"), words("many", 1));
    }
    // A multipart upload, begun and not completed: invisible to listings.
    let mut upload = block_on(store.put_multipart(&"logs/big.txt".into())).unwrap();
    let part = words("big", 1).repeat(300_000); // 1.2 MB, one (last) part
    block_on(upload.put_part(PutPayload::from(part.clone().into_bytes()))).unwrap();
    let want = expect(&[("many", 1200)]);
    let arrived = wait_for_totals(&job, &want, Duration::from_secs(60));
    assert!(
        arrived,
        "{:?}\n{}",
        totals(&batches(&job.out.lock().unwrap())),
        job.err()
    );
    job.expect_more_batches(3);
    assert_eq!(
        totals(&batches(&job.out.lock().unwrap())),
        want,
        "an upload in progress was read"
    );
    block_on(upload.complete()).unwrap();
    let want = expect(&[("big", 300_000), ("many", 1200)]);
    let arrived = wait_for_totals(&job, &want, Duration::from_secs(30));
    job.expect_more_batches(3);
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    assert!(arrived, "{}", job.err());
    assert_eq!(totals(&batches(&job.out.lock().unwrap())), want);
}

#[test]
fn wrong_s3_credentials_are_refused_with_the_location() {
    let s3 = S3Server::start(true);
    let mut cmd = sluice();
    cmd.args([
        "run",
        "file-wordcount",
        "--dir",
        "s3://inbox/logs",
        "--batch",
        "200ms",
        "--max-batches",
        "20",
        "--ui",
        "off",
    ]);
    s3.env(&mut cmd);
    let mut job = Proc::spawn(cmd);
    let code = job.wait();
    let err = job.err();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("s3://inbox/logs") && err.contains("cannot list"),
        "{err}"
    );
}

#[test]
fn a_checkpoint_on_s3_survives_sigkill_and_a_move_to_another_machine() {
    use std::io::Write as _;
    let s3 = S3Server::start(false);
    s3.create_bucket("checkpoints");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    // 300 lines on the first connection; 200 more on the next, once the first run is killed.
    let (killed, wait_kill) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let mut open = Vec::new();
        for n in [300, 200] {
            let (mut s, _) = listener.accept().unwrap();
            for _ in 0..n {
                s.write_all(b"spark streaming\n").unwrap();
            }
            open.push(s);
            let _ = wait_kill.recv();
        }
    });
    // Each run has a working directory of its own (another machine, as far as it can tell):
    // everything it resumes from comes from the store.
    let start = |tmp: &Path| {
        let mut cmd = sluice();
        cmd.args([
            "run",
            "stateful-wordcount",
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--batch",
            "200ms",
            "--checkpoint",
            "s3://checkpoints/jobs/wordcount",
            "--checkpoint-interval",
            "1s",
            "--ui",
            "off",
        ])
        .env("TMPDIR", tmp);
        s3.env(&mut cmd);
        Proc::spawn(cmd)
    };
    let first_tmp = tempfile::tempdir().unwrap();
    let mut first = start(first_tmp.path());
    assert!(
        wait_until(Duration::from_secs(30), || first
            .out
            .lock()
            .unwrap()
            .contains("(spark,300)")),
        "{}",
        first.err()
    );
    first.expect_more_batches(3);
    first.signal("-KILL");
    drop(first_tmp);
    killed.send(()).unwrap();
    let second_tmp = tempfile::tempdir().unwrap();
    let mut second = start(second_tmp.path());
    let done = wait_until(Duration::from_secs(30), || {
        second.out.lock().unwrap().contains("(spark,500)")
    });
    assert_eq!(second.signal("-TERM"), 0, "{}", second.err());
    let out = second.out.lock().unwrap().clone();
    assert!(
        done && out.contains("(streaming,500)"),
        "{out}\n{}",
        second.err()
    );
    assert!(
        !out.contains("(spark,600)") && !out.contains("(spark,800)"),
        "{out}"
    );
    drop(killed);
    server.join().unwrap();
}

/// A checkpoint on S3 has one owner too: its lease object. A second copy is refused with the
/// holder and the lease's expiry; once the holder is SIGKILLed, a restart on this host takes
/// the lease over at once (its process is gone), without waiting for the expiry.
#[test]
fn a_checkpoint_on_s3_is_leased_to_one_process() {
    let s3 = S3Server::start(false);
    s3.create_bucket("leases");
    let start = |extra: &[&str]| {
        let mut cmd = sluice();
        cmd.args([
            "run",
            "stateful-wordcount",
            "--batch",
            "100ms",
            "--checkpoint",
            "s3://leases/job",
            "--checkpoint-interval",
            "100ms",
            "--ui",
            "off",
        ])
        .args(extra);
        s3.env(&mut cmd);
        cmd
    };
    let mut first = Proc::spawn(start(&[]));
    started(&first);
    let second = start(&["--max-batches", "2"]).output().unwrap();
    let err = common::text(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(
        err.contains("s3://leases/job is in use by")
            && err.contains(&format!("PID {}", first.id()))
            && err.contains("lease expires in"),
        "{err}"
    );
    // Generated input cannot be replayed: the restart needs a snapshot, so the holder is
    // killed once one is in the bucket.
    let snapshotted = || {
        block_on(async {
            use futures::TryStreamExt;
            use object_store::ObjectStore;
            s3.store("leases")
                .list(Some(&object_store::path::Path::from("job")))
                .try_collect::<Vec<_>>()
                .await
        })
        .is_ok_and(|objects| {
            objects
                .iter()
                .any(|o| o.location.as_ref().ends_with("/MANIFEST"))
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), snapshotted),
        "no snapshot in the bucket: {}",
        first.err()
    );
    first.signal("-KILL");
    let third = start(&["--max-batches", "2", "-v"]).output().unwrap();
    let err = common::text(&third.stderr);
    assert!(third.status.success(), "{err}");
    assert!(err.contains("took over the lease of PID"), "{err}");
    // Released at a clean exit: no lease object is left.
    let left = block_on(async {
        use object_store::ObjectStoreExt;
        s3.store("leases")
            .get(&object_store::path::Path::from("job/owner-p0"))
            .await
            .is_ok()
    });
    assert!(!left, "the lease is removed at exit");
}

/// Spark users delete processed input files. A stateless job that crashes afterwards replays
/// the batches that had read them with outputs off: it does not need them, so it says so and
/// goes on (a job that needs the content still refuses).
#[test]
fn a_deleted_input_file_of_a_finished_batch_does_not_stop_a_stateless_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let args = [
        "--checkpoint",
        ck.path().to_str().unwrap(),
        "--checkpoint-interval",
        "10s",
        "--complete-when",
        "visible",
        "-v",
    ];
    let mut job = file_job(&d, &args);
    started(&job);
    std::fs::write(dir.path().join("a.txt"), words("alpha", 3)).unwrap();
    assert!(
        wait_for_totals(&job, &expect(&[("alpha", 3)]), Duration::from_secs(20)),
        "{}",
        job.err()
    );
    job.expect_more_batches(3);
    job.signal("-KILL");
    std::fs::remove_file(dir.path().join("a.txt")).unwrap();
    std::fs::write(dir.path().join("b.txt"), words("beta", 2)).unwrap();
    let mut job = file_job(&d, &args);
    let done = wait_for_totals(&job, &expect(&[("beta", 2)]), Duration::from_secs(20));
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    assert!(done, "{}\n{}", job.out.lock().unwrap(), job.err());
    assert!(
        job.err().contains("is gone and not needed"),
        "{}",
        job.err()
    );
}
