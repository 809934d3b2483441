//! `examples/kafka_to_postgres`, run as a user runs it: records `name,id` into PostgreSQL
//! with each batch's offsets in the same transaction, killed with SIGKILL mid-run and started
//! again; the table ends with every record once and no malformed one.

use std::process::Command;
use std::time::Duration;

use crate::common::example;
use crate::common::kafka::Broker;

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The ids written for rows named `name`, sorted.
fn ids(name: &str) -> Vec<i64> {
    let mut client = postgres::Client::connect(URL, postgres::NoTls).expect("PostgreSQL runs");
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS mydata (name VARCHAR(200), id BIGINT)")
        .expect("the table");
    let mut ids: Vec<i64> = client
        .query("SELECT id FROM mydata WHERE name = $1", &[&name])
        .expect("a query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    ids.sort_unstable();
    ids
}

fn records(name: &str, ids: std::ops::Range<i64>) -> Vec<String> {
    ids.map(|i| format!("{name},{i}")).collect()
}

#[test]
fn the_kafka_to_postgres_example_is_exactly_once_across_sigkill() {
    let _turn = super::turn(false);
    let broker = Broker::start();
    let name = super::unique("ex");
    let topic = format!("orders-{name}");
    broker.create_topic(&topic, 2);
    broker.produce(&topic, 0, &records(&name, 0..50));
    broker.produce(&topic, 1, &records(&name, 50..100));
    broker.produce(&topic, 1, &["no comma".to_owned(), format!("{name},x")]);
    let args = |batches: &str| {
        let mut c = Command::new(example("kafka_to_postgres"));
        c.args([&broker.brokers(), &topic, &name, URL, batches]);
        c
    };
    // Killed wherever it is: before, during or after its first batch's commit.
    let mut killed = args("0").spawn().expect("the example starts");
    std::thread::sleep(Duration::from_millis(1500));
    killed.kill().expect("SIGKILL");
    let _ = killed.wait();
    broker.produce(&topic, 0, &records(&name, 100..120));
    // Started again and bounded: it resumes from the offsets committed with the rows.
    let out = args("3").output().expect("the example runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ids(&name),
        (0..120).collect::<Vec<_>>(),
        "every record exactly once, nothing malformed"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("records set aside: 2") || stderr.contains("records set aside: 0"),
        "{stderr}"
    );
}
