//! The README's Kafka rows, followed to the letter: the shell block between
//! `<!-- readme-kafka:begin -->` and `<!-- readme-kafka:end -->` runs line by line (the
//! broker it starts is this test's own, given through `SLUICE_BROKERS`), and every `# prints`
//! comment holds for the output of the command before it.

use std::path::Path;

use crate::broker;
use std::process::Command;

/// The README's Kafka block: (command, what it must print) in order.
fn readme_block() -> Vec<(String, Vec<String>)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let begin = readme
        .find("<!-- readme-kafka:begin -->")
        .expect("the README's Kafka block");
    let end = readme[begin..]
        .find("<!-- readme-kafka:end -->")
        .expect("its end")
        + begin;
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in readme[begin..end].lines() {
        let line = line.trim();
        if line.starts_with("```") || line.starts_with("<!--") || line.is_empty() {
            continue;
        }
        if let Some(want) = line.strip_prefix("# prints ") {
            let (want, times) = match want.rsplit_once(", ") {
                Some((w, "three times")) => (w, 3),
                _ => (want, 1),
            };
            let last = steps.last_mut().expect("a command before `# prints`");
            last.1.extend(std::iter::repeat_n(want.to_owned(), times));
        } else if !line.starts_with('#') {
            steps.push((line.to_owned(), Vec::new()));
        }
    }
    steps
}

#[test]
fn the_readmes_kafka_rows_give_the_figures_it_promises() {
    let broker = broker::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_sluice")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let steps = readme_block();
    assert!(steps.len() >= 12, "{steps:?}");
    let mut checked = 0;
    for (command, want) in steps {
        if command.starts_with("scripts/kafka-broker.sh") {
            continue; // this test's broker stands in for it
        }
        let out = Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &command])
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("SLUICE_BROKERS", broker.brokers())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "`{command}` failed: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !want.is_empty() {
            let got: Vec<&str> = stdout.lines().map(str::trim).collect();
            assert_eq!(got, want, "`{command}`");
            checked += want.len();
        }
    }
    assert_eq!(checked, 6, "every `# prints` of the block was checked");
}
