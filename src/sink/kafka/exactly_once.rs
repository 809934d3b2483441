//! Kafka → Kafka exactly once (course §4.3.3 done right): on the worker that reads each
//! partition, one transactional producer (`transactional.id` = `sluice-<job>-<worker>`, stable
//! across restarts, so a restarted job fences its zombie) writes a batch's records and commits
//! its partitions' offsets to the consumer group inside the same transaction
//! (`send_offsets_to_transaction`). Readers with `isolation.level=read_committed` see every
//! record once; an aborted or interrupted batch is replayed from the committed offsets, and a
//! replayed batch whose offsets the group already holds is not written again.

use super::transactional::Transactional;
use super::{KafkaSink, OutRecord, fail_output};
use crate::retry::Backoff;
use crate::source::kafka::client::failure;
use crate::source::kafka::{ConsumerRecord, DirectStream, KafkaItem};

impl DirectStream<'_> {
    /// Exactly-once into Kafka (see the module docs): `to_records` of a batch's records are
    /// produced and the partitions' new offsets committed to `group` in one Kafka transaction;
    /// `job` names the transactional ids, which must stay the same across restarts. Use the
    /// default (Kafka) offset store with the same group.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn build(stream: sluice::source::kafka::DirectStream<'_>) {
    /// use sluice::sink::kafka::{KafkaSink, OutRecord};
    /// stream.write_kafka_exactly_once(KafkaSink::new("127.0.0.1:9092"), "etl", "etl-group", |r| {
    ///     r.value.clone().map(|v| OutRecord::new("clean", v)).into_iter().collect()
    /// });
    /// # }
    /// ```
    pub fn write_kafka_exactly_once(
        &self,
        sink: KafkaSink,
        job: &str,
        group: &str,
        to_records: impl Fn(&ConsumerRecord) -> Vec<OutRecord> + 'static,
    ) {
        let items = self.items();
        let runtime = items.ctx.runtime.clone();
        let worker = runtime.worker().index;
        let mut tx = Transactional::new(sink, format!("sluice-{job}-{worker}"), group.to_owned());
        let in_doubt_through = runtime.in_doubt_through();
        let job = job.to_owned();
        items.foreach_worker(move |p, items| {
            let mut out = Vec::new();
            let mut offsets = Vec::new();
            for item in &items {
                match item {
                    KafkaItem::Record(r) => out.extend(to_records(r)),
                    KafkaItem::Range(r) if r.until > r.from => {
                        offsets.push((r.topic.clone(), r.partition, r.until))
                    }
                    KafkaItem::Range(_) => {}
                }
            }
            if out.is_empty() && offsets.is_empty() {
                return;
            }
            let what = format!(
                "Kafka sink {job}: batch {} waits for its transaction",
                p.time
            );
            let written = Backoff::default().retry(&what, &|| runtime.stopping(), || {
                if in_doubt_through.is_some_and(|d| p.time.millis() <= d) && !offsets.is_empty() {
                    // Replayed after a crash: committed already if the group holds its offsets.
                    let parts: Vec<(String, i32)> =
                        offsets.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
                    let committed = tx.committed(&parts).map_err(failure)?;
                    let done = committed
                        .iter()
                        .zip(&offsets)
                        .all(|(c, (_, _, next))| c.is_some_and(|c| c >= *next));
                    if done {
                        return Ok(());
                    }
                }
                tx.write(&out, &offsets)
            });
            if let Err(gave_up) = written {
                fail_output(&runtime, format!("kafka sink {job}"), p.time, gave_up);
            }
        });
    }
}
