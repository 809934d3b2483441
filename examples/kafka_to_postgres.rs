//! The course's exactly-once output (§4.3.1, "transactional") as a library program: records
//! `name,id` from a Kafka topic go into PostgreSQL's `mydata (name, id)`, and each batch's
//! rows and the new offsets of its partitions commit in one transaction. The offsets are read
//! back from the same table at start, so a job killed at any moment and started again writes
//! every record exactly once (`tests/kafka.rs` kills it and checks the table).
//!
//! A record that is not `name,id` with an integer id is counted and set aside, never written.
//!
//! ```text
//! cargo run --example kafka_to_postgres --features kafka,postgres -- \
//!     127.0.0.1:9092 orders my-group postgres://postgres@127.0.0.1:5432/test [batches]
//! ```

use std::time::Duration;

use sluice::offsets::OffsetStoreKind;
use sluice::sink::SqlValue;
use sluice::source::DeadLetters;
use sluice::source::kafka::{ConsumerRecord, ConsumerStrategy, KafkaConfig};
use sluice::{StreamingConfig, StreamingContext};

/// `name,id` as a row, or `None`.
fn row(record: &ConsumerRecord) -> Option<Vec<SqlValue>> {
    let (name, id) = record.value_str()?.split_once(',')?;
    let id: i64 = id.trim().parse().ok()?;
    Some(vec![SqlValue::from(name.trim()), SqlValue::Int(id)])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut next = |what: &str, default: &str| {
        args.next().unwrap_or_else(|| {
            eprintln!("({what} not given: {default})");
            default.to_owned()
        })
    };
    let brokers = next("brokers", "127.0.0.1:9092");
    let topic = next("topic", "orders");
    let group = next("group", "orders-to-postgres");
    let url = next("database", "postgres://postgres@127.0.0.1:5432/test");
    let batches = next("batches", "0").parse::<u64>()?;

    let mut config = StreamingConfig::new(Duration::from_secs(1))?.app_name("kafka-to-postgres");
    if batches > 0 {
        config = config.max_batches(batches);
    }
    // The offsets live in the table the rows go to: what a restart reads is what committed.
    let kafka = KafkaConfig::new(
        brokers,
        group.clone(),
        ConsumerStrategy::Subscribe(vec![topic]),
    )
    .param("auto.offset.reset", "earliest")
    .offset_store(OffsetStoreKind::Postgres(url.clone()));
    let malformed = DeadLetters::counting();
    let counted = malformed.clone();
    StreamingContext::new(config).run(move |job| {
        job.kafka_direct_stream(kafka.clone())
            .set_aside(&malformed, |r| {
                row(r).map(|_| ()).ok_or_else(|| not_a_row(r))
            })
            .write_sql_with_offsets(
                &url,
                &group,
                vec!["CREATE TABLE IF NOT EXISTS mydata (name VARCHAR(200), id BIGINT)".into()],
                "INSERT INTO mydata (name, id) VALUES ($1, $2)",
                row,
            );
    })?;
    eprintln!("records set aside: {}", counted.count());
    Ok(())
}

/// Why `record` is not a row, with where it came from.
fn not_a_row(record: &ConsumerRecord) -> sluice::source::Malformed {
    sluice::source::Malformed {
        source: format!("kafka {}", record.topic),
        position: format!("partition {} offset {}", record.partition, record.offset),
        reason: "not `name,id` with an integer id".into(),
        bytes: record.value.clone().unwrap_or_default(),
    }
}
