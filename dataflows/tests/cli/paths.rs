//! Paths and ports as the README says: a mistyped one is exit 2 naming the flag and the fix,
//! and nothing is created where the user did not ask.

use crate::common::{run, text};

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn refused(args: &[&str], says: &[&str]) {
    let out = run(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    for s in says {
        assert!(err.contains(s), "{args:?} should say `{s}`: {err}");
    }
}

#[test]
fn paths_that_cannot_be_what_the_flag_needs_are_refused_and_nothing_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    let quick = ["--batch", "100ms", "--max-batches", "1", "--ui", "off"];
    let job = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["run", "network-wordcount"].map(String::from).to_vec();
        a.extend(quick.iter().map(|s| s.to_string()));
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };

    let args = job(&["--checkpoint", &d("missing/chk")]);
    refused(
        &strs(&args),
        &["--checkpoint", "does not exist", "mkdir -p"],
    );
    assert!(!dir.path().join("missing").exists(), "nothing made");

    std::fs::write(d("a-file"), "x").unwrap();
    let args = job(&["--checkpoint", &d("a-file")]);
    refused(
        &strs(&args),
        &["--checkpoint", "is a file, not a directory"],
    );

    let args = job(&[
        "--host",
        "127.0.0.1",
        "--port",
        "1",
        "--dead-letter",
        &d("missing/dead.tsv"),
    ]);
    refused(&strs(&args), &["--dead-letter", "does not exist"]);
    assert!(!dir.path().join("missing").exists(), "nothing made");

    // kafka-offsets --store checkpoint needs --checkpoint, not a ./sluice-checkpoint.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "run",
            "kafka-offsets",
            "--topics",
            "t",
            "--store",
            "checkpoint",
        ])
        .args(["--ui", "off", "--brokers", "127.0.0.1:9"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--store checkpoint") && err.contains("--checkpoint DIR"),
        "{err}"
    );
    assert!(!dir.path().join("sluice-checkpoint").exists());

    // Sizes are sizes for every flag that takes one.
    let out = run(&strs(&job(&["--max-line-bytes", "8MiB"])));
    assert!(out.status.success(), "{}", text(&out.stderr));
    refused(
        &strs(&job(&["--max-line-bytes", "0"])),
        &["--max-line-bytes"],
    );
}

#[test]
fn an_explicit_web_ui_address_in_use_is_refused() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    refused(
        &[
            "run",
            "network-wordcount",
            "--max-batches",
            "1",
            "--ui",
            &addr,
        ],
        &[&addr, "in use", "--ui"],
    );
}
