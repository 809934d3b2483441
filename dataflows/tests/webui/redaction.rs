//! Redaction (Spark's `spark.redaction.regex`): a job started with secrets on its command line
//! and in its environment shows none of them in its page, REST answers, metrics, logs (at
//! `-vv`) or error messages.

use std::time::Duration;

use crate::broker::Broker;
use crate::common::{Proc, fresh_postgres, sluice, wait_until};
use crate::support::{chromium, get};

const URL_PASSWORD: &str = "UrlPassw0rd-7";
const KAFKA_SECRET: &str = "K3yPassword-7";
const ENV_SECRET: &str = "EnvSecret-7-aws";
const WRONG_PASSWORD: &str = "WrongPassw0rd-7";

fn assert_clean(what: &str, text: &str) {
    for secret in [URL_PASSWORD, KAFKA_SECRET, ENV_SECRET, WRONG_PASSWORD] {
        assert!(
            !text.contains(secret),
            "{what} shows the secret {secret}:\n{text}"
        );
    }
}

#[test]
fn no_secret_appears_in_any_output_of_a_job() {
    let broker = Broker::start();
    broker.create_topic("secret", 1);
    broker.produce(
        "secret",
        0,
        &(0..20).map(|i| format!("ann,s{i}")).collect::<Vec<_>>(),
    );
    // PostgreSQL here trusts local connections: the URL's password is not checked.
    let url = fresh_postgres("sluice_redaction").replace(
        "postgres://postgres@",
        &format!("postgres://postgres:{URL_PASSWORD}@"),
    );
    let mut cmd = sluice();
    cmd.args(["run", "kafka-to-postgres", "--brokers", &broker.brokers()])
        .args(["--topics", "secret", "--group", "redaction"])
        .args(["--offset-reset", "earliest", "--mode", "idempotent"])
        .args([
            "--url",
            &url,
            "--batch",
            "200ms",
            "--ui",
            "127.0.0.1:0",
            "-vv",
        ])
        .args(["--kafka-param", &format!("ssl.key.password={KAFKA_SECRET}")])
        .env("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
        .env("SLUICE_TEST_TOKEN", ENV_SECRET);
    let mut job = Proc::spawn(cmd);
    let addr = job
        .ui_addr()
        .unwrap_or_else(|| panic!("no web UI address: {}", job.err()));
    let app = "/api/v1/applications/kafka-to-postgres";
    assert!(
        wait_until(Duration::from_secs(30), || {
            get(&addr, &format!("{app}/streaming/statistics"))
                .is_ok_and(|(_, b)| b.contains("\"numProcessedRecords\":20"))
        }),
        "the job never wrote its 20 orders: {}",
        job.err()
    );
    let mut served = String::new();
    for path in [
        "/api/v1/applications".to_owned(),
        format!("{app}/streaming/statistics"),
        format!("{app}/streaming/batches"),
        "/metrics".to_owned(),
        "/".to_owned(),
    ] {
        let (code, body) = get(&addr, &path).unwrap();
        assert_eq!(code, 200, "{path}");
        assert_clean(&path, &body);
        served.push_str(&body);
    }
    assert!(
        served.contains("*********(redacted)"),
        "the command line is shown, redacted: {served}"
    );
    let dom = chromium(&format!("http://{addr}/"), &["--dump-dom"]);
    assert_clean(
        "the page in Chromium",
        &String::from_utf8_lossy(&dom.stdout),
    );
    assert_eq!(job.signal("-TERM"), 0, "{}", job.err());
    assert_clean("stdout", &job.out.lock().unwrap());
    assert_clean("stderr at -vv", &job.err());
    assert!(
        job.err().lines().count() > 10,
        "-vv logs something: {}",
        job.err()
    );

    // A wrong password in a URL is named in the error, without the password.
    let mut cmd = sluice();
    cmd.args(["run", "kafka-to-mysql", "--brokers", &broker.brokers()])
        .args(["--topics", "secret", "--group", "redaction-mysql"])
        .args(["--offset-reset", "earliest", "--mode", "idempotent"])
        .args([
            "--url",
            &format!("mysql://root:{WRONG_PASSWORD}@127.0.0.1:3306/mysql"),
        ])
        .args(["--batch", "200ms", "--ui", "off"]);
    let mut job = Proc::spawn(cmd);
    let code = job.wait();
    assert_ne!(code, 0, "a wrong password fails the job: {}", job.err());
    assert_clean("the error of a wrong password", &job.err());
    assert!(
        job.err()
            .contains("mysql://root:*********(redacted)@127.0.0.1:3306"),
        "the error names the server: {}",
        job.err()
    );
}
