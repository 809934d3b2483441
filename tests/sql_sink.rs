//! The SQL sinks against the machine's PostgreSQL and MariaDB: permanent errors fail the job
//! with the database's message, values are bound to the column types, TLS when the URL asks.

use std::time::Duration;

use sluice::sink::SqlValue;
use sluice::source::BatchQueue;
use sluice::{SluiceError, StreamingConfig, StreamingContext};

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";
const MY: &str = "mysql://root@127.0.0.1:3306/test";

/// Writes `rows` with `statement` after `setup`; the job's result.
fn write(
    url: &str,
    setup: &str,
    statement: &str,
    rows: Vec<Vec<SqlValue>>,
) -> Result<(), SluiceError> {
    let queue = BatchQueue::from_batches(vec![rows]);
    let config = StreamingConfig::new(Duration::from_secs(1))?
        .as_fast_as_possible(1)
        .first_batch_ms(1000)
        .max_batches(1);
    let (url, setup, statement) = (url.to_owned(), setup.to_owned(), statement.to_owned());
    StreamingContext::new(config).run(move |job| {
        job.queue_stream(&queue).write_sql(
            &url,
            vec![setup.clone()],
            &statement,
            |row: &Vec<SqlValue>| Some(row.clone()),
        );
    })
}

fn table(prefix: &str) -> String {
    format!("sluice_{prefix}_{}", std::process::id())
}

#[test]
fn a_syntax_error_fails_the_job_with_postgres_message() {
    let t = table("pg_syntax");
    let err = write(
        PG,
        &format!("CREATE TABLE IF NOT EXISTS {t} (name TEXT)"),
        &format!("INSERT INTO {t} (name) VALUESS ($1)"),
        vec![vec![SqlValue::from("a")]],
    )
    .expect_err("a syntax error is permanent");
    let text = err.to_string();
    assert!(matches!(err, SluiceError::OutputFailed { .. }), "{text}");
    assert_eq!(err.exit_code(), 1);
    assert!(
        text.contains("42601") && text.contains("syntax error"),
        "{text}"
    );
}

#[test]
fn a_syntax_error_fails_the_job_with_mariadb_message() {
    let t = table("my_syntax");
    let err = write(
        MY,
        &format!("CREATE TABLE IF NOT EXISTS {t} (name TEXT)"),
        &format!("INSERT INTO {t} (name) VALUESS (?)"),
        vec![vec![SqlValue::from("a")]],
    )
    .expect_err("a syntax error is permanent");
    let text = err.to_string();
    assert!(
        text.contains("1064") && text.contains("SQL syntax"),
        "{text}"
    );
}

#[test]
fn a_constraint_violation_is_permanent() {
    let t = table("pg_unique");
    let err = write(
        PG,
        &format!("CREATE TABLE IF NOT EXISTS {t} (id BIGINT PRIMARY KEY)"),
        &format!("INSERT INTO {t} (id) VALUES ($1)"),
        vec![vec![SqlValue::Int(1)], vec![SqlValue::Int(1)]],
    )
    .expect_err("a duplicate key is permanent");
    assert!(err.to_string().contains("23505"), "{err}");
}

#[test]
fn integers_are_bound_to_the_column_type_and_text_is_not() {
    let t = table("pg_types");
    let setup = format!("CREATE TABLE IF NOT EXISTS {t} (small SMALLINT, id INT, name TEXT)");
    let insert = format!("INSERT INTO {t} (small, id, name) VALUES ($1, $2, $3)");
    write(
        PG,
        &setup,
        &insert,
        vec![vec![
            SqlValue::Int(7),
            SqlValue::Int(70_000),
            SqlValue::Int(5),
        ]],
    )
    .expect("integers fit SMALLINT, INT and TEXT columns");
    let err = write(
        PG,
        &setup,
        &insert,
        vec![vec![
            SqlValue::from("seven"),
            SqlValue::Int(1),
            SqlValue::Null,
        ]],
    )
    .expect_err("text into a SMALLINT column");
    assert!(err.to_string().contains("parameter $1 is text"), "{err}");
    let err = write(
        PG,
        &setup,
        &insert,
        vec![vec![
            SqlValue::Int(70_000),
            SqlValue::Int(1),
            SqlValue::Null,
        ]],
    )
    .expect_err("70000 does not fit a SMALLINT");
    assert!(err.to_string().contains("too large"), "{err}");
}

#[test]
fn postgres_over_tls_when_the_url_asks() {
    let t = table("pg_tls");
    write(
        &format!("{PG}?sslmode=require"),
        &format!("CREATE TABLE IF NOT EXISTS {t} (name TEXT)"),
        &format!("INSERT INTO {t} (name) VALUES ($1)"),
        vec![vec![SqlValue::from("secret")]],
    )
    .expect("the local PostgreSQL has ssl = on");
    let mut c = postgres::Client::connect(PG, postgres::NoTls).expect("PostgreSQL");
    let ssl: Vec<bool> = c
        .query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("pg_stat_ssl")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ssl, vec![false], "the checking connection itself is plain");
    let n: i64 = c
        .query_one(&format!("SELECT COUNT(*) FROM {t}"), &[])
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
}

#[test]
fn mariadb_without_tls_refuses_a_url_that_requires_it() {
    // The machine's MariaDB has TLS off (have_ssl = DISABLED): the job must say so, not hang.
    let t = table("my_tls");
    let err = write(
        &format!("{MY}?sslmode=required"),
        &format!("CREATE TABLE IF NOT EXISTS {t} (name TEXT)"),
        &format!("INSERT INTO {t} (name) VALUES (?)"),
        vec![vec![SqlValue::from("a")]],
    )
    .expect_err("no TLS on this server");
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[test]
fn write_rows_outside_a_job_retries_nothing_permanent() {
    let t = table("pg_rows");
    let mut sink = sluice::sink::SqlSink::new(
        PG,
        vec![format!("CREATE TABLE IF NOT EXISTS {t} (id BIGINT)")],
        format!("INSERT INTO {t} (id) VALUES ($1)"),
    )
    .expect("a PostgreSQL URL");
    sink.write_rows(&[vec![SqlValue::Int(1)], vec![SqlValue::Int(2)]], || false)
        .expect("two rows written");
    let mut bad = sluice::sink::SqlSink::new(PG, vec![], format!("INSERT INTO {t} VALUESS ($1)"))
        .expect("a PostgreSQL URL");
    let err = bad
        .write_rows(&[vec![SqlValue::Int(3)]], || false)
        .expect_err("a syntax error is permanent");
    assert!(err.to_string().contains("42601"), "{err}");
}

/// The last row of each key, as an upsert row by row leaves it: the oracle of the multi-row
/// statements (2 500 rows: three chunks of at most 1 000, keys repeated inside each chunk).
fn last_per_key(rows: &[(i64, String)]) -> std::collections::BTreeMap<i64, String> {
    rows.iter().cloned().collect()
}

fn upsert_rows() -> Vec<(i64, String)> {
    (0..2500).map(|i| (i % 700, format!("v{i}"))).collect()
}

#[test]
fn many_rows_upsert_in_postgres_as_row_by_row() {
    let t = table("pg_many");
    let rows = upsert_rows();
    write(
        PG,
        &format!("CREATE TABLE IF NOT EXISTS {t} (id BIGINT PRIMARY KEY, name TEXT)"),
        &format!("INSERT INTO {t} (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name"),
        rows.iter()
            .map(|(id, name)| vec![SqlValue::Int(*id), SqlValue::from(name.as_str())])
            .collect(),
    )
    .unwrap();
    let mut c = postgres::Client::connect(PG, postgres::NoTls).unwrap();
    let got: std::collections::BTreeMap<i64, String> = c
        .query(&format!("SELECT id, name FROM {t}"), &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    c.batch_execute(&format!("DROP TABLE {t}")).unwrap();
    assert_eq!(got, last_per_key(&rows));

    // Plain inserts: every row once.
    let t = table("pg_many_plain");
    write(
        PG,
        &format!("CREATE TABLE IF NOT EXISTS {t} (id BIGINT, name TEXT)"),
        &format!("INSERT INTO {t} (name, id) VALUES ($2, $1)"),
        rows.iter()
            .map(|(id, name)| vec![SqlValue::Int(*id), SqlValue::from(name.as_str())])
            .collect(),
    )
    .unwrap();
    let row = c
        .query_one(
            &format!("SELECT COUNT(*), SUM(id)::BIGINT, COUNT(DISTINCT name) FROM {t}"),
            &[],
        )
        .unwrap();
    c.batch_execute(&format!("DROP TABLE {t}")).unwrap();
    let sum: i64 = rows.iter().map(|(id, _)| id).sum();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (2500, sum, 2500)
    );
}

#[test]
fn many_rows_upsert_in_mariadb_as_row_by_row() {
    use mysql::prelude::Queryable;
    let t = table("my_many");
    let rows = upsert_rows();
    write(
        MY,
        &format!("CREATE TABLE IF NOT EXISTS {t} (id BIGINT PRIMARY KEY, name VARCHAR(20))"),
        &format!(
            "INSERT INTO {t} (id, name) VALUES (?, ?) ON DUPLICATE KEY UPDATE name = VALUES(name)"
        ),
        rows.iter()
            .map(|(id, name)| vec![SqlValue::Int(*id), SqlValue::from(name.as_str())])
            .collect(),
    )
    .unwrap();
    let mut c = mysql::Conn::new(mysql::Opts::from_url(MY).unwrap()).unwrap();
    let got: std::collections::BTreeMap<i64, String> = c
        .query::<(i64, String), _>(format!("SELECT id, name FROM {t}"))
        .unwrap()
        .into_iter()
        .collect();
    c.query_drop(format!("DROP TABLE {t}")).unwrap();
    assert_eq!(got, last_per_key(&rows));
}

/// A listener hears of the batch an output failed, with the output and the database's reason.
#[test]
fn listeners_hear_of_the_failed_batch() {
    use std::sync::{Arc, Mutex};
    #[derive(Default)]
    struct Failures(Mutex<Vec<(u64, String, String)>>);
    impl sluice::listener::StreamingListener for Failures {
        fn on_batch_completed(&self, _: &sluice::listener::BatchInfo) {}
        fn on_batch_failed(&self, t: sluice::Time, output: &str, reason: &str) {
            self.0
                .lock()
                .unwrap()
                .push((t.millis(), output.to_owned(), reason.to_owned()));
        }
    }
    let failures = Arc::new(Failures::default());
    let t = table("pg_failed_listener");
    let queue = BatchQueue::from_batches(vec![vec![vec![SqlValue::from("a")]]]);
    let config = StreamingConfig::new(Duration::from_secs(1))
        .unwrap()
        .as_fast_as_possible(1)
        .first_batch_ms(1000)
        .max_batches(1)
        .listener(Arc::clone(&failures));
    let (setup, statement) = (
        format!("CREATE TABLE IF NOT EXISTS {t} (name TEXT)"),
        format!("INSERT INTO {t} (name) VALUESS ($1)"),
    );
    let err = StreamingContext::new(config)
        .run(move |job| {
            job.queue_stream(&queue).write_sql(
                PG,
                vec![setup.clone()],
                &statement,
                |row: &Vec<SqlValue>| Some(row.clone()),
            );
        })
        .expect_err("a syntax error fails the job");
    let seen = failures.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?} ({err})");
    assert_eq!(seen[0].0, 1000);
    assert!(seen[0].1.starts_with("sql sink postgres://"), "{seen:?}");
    assert!(seen[0].2.contains("42601"), "{seen:?}");
}
