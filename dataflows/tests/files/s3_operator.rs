//! What an operator sees of S3: a missing bucket and missing credentials said in words (exit 2,
//! no XML, no metadata-service address to puzzle over), no working copy of an S3 checkpoint
//! left in the temporary directory, and `checkpoint show s3://…` naming the store.

use std::time::{Duration, Instant};

use crate::common::{Proc, sluice, text};
use crate::s3::S3Server;

fn leftovers() -> Vec<String> {
    std::fs::read_dir(std::env::temp_dir())
        .map(|es| {
            es.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("sluice-checkpoint-"))
                .collect()
        })
        .unwrap_or_default()
}

fn mine(before: &[String], pid: u32) -> Vec<String> {
    leftovers()
        .into_iter()
        .filter(|n| n.ends_with(&format!("-{pid}")) && !before.contains(n))
        .collect()
}

#[test]
fn a_missing_bucket_and_missing_credentials_are_said_in_words() {
    let s3 = S3Server::start(false);
    let mut cmd = sluice();
    cmd.args(["run", "file-wordcount", "--dir", "s3://no-such-bucket/logs"])
        .args(["--batch", "200ms", "--max-batches", "5", "--ui", "off"]);
    s3.env(&mut cmd);
    let mut job = Proc::spawn(cmd);
    assert_eq!(job.wait(), 2, "{}", job.err());
    let err = job.err();
    assert!(
        err.contains("the bucket `no-such-bucket` does not exist") && !err.contains("<?xml"),
        "{err}"
    );

    // No credentials anywhere: said so, promptly, without blaming an address.
    let started = Instant::now();
    let mut cmd = sluice();
    cmd.args(["run", "file-wordcount", "--dir", "s3://inbox/logs"])
        .args(["--batch", "200ms", "--max-batches", "5", "--ui", "off"]);
    for (k, v) in s3.vars() {
        if !k.contains("ACCESS_KEY") {
            cmd.env(k, v);
        }
    }
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE");
    let mut job = Proc::spawn(cmd);
    let code = job.wait();
    let err = job.err();
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no S3 credentials: set AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    assert!(!err.contains("169.254.169.254"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_s3_checkpoint_leaves_no_working_copy_and_is_shown_by_its_url() {
    let s3 = S3Server::start(false);
    s3.create_bucket("chk");
    let before = leftovers();
    let mut cmd = sluice();
    cmd.args(["run", "stateful-wordcount", "--checkpoint", "s3://chk/job"])
        .args(["--batch", "100ms", "--max-batches", "5", "--ui", "off"]);
    s3.env(&mut cmd);
    let mut job = Proc::spawn(cmd);
    let pid = job.id();
    assert_eq!(job.wait(), 0, "{}", job.err());
    assert_eq!(
        mine(&before, pid),
        Vec::<String>::new(),
        "working copy left"
    );

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.args(["checkpoint", "show", "s3://chk/job"]);
    s3.env(&mut cmd);
    let child = cmd.output().unwrap();
    let out = text(&child.stdout);
    assert!(child.status.success(), "{}", text(&child.stderr));
    assert!(
        out.lines()
            .next()
            .is_some_and(|l| l.ends_with("s3://chk/job")),
        "{out}"
    );
    assert!(
        !out.contains(&std::env::temp_dir().display().to_string()),
        "{out}"
    );
}
