//! Kafka → Kafka exactly once (course §4.3.3 done right): on the worker that reads each
//! partition, one transactional producer (`transactional.id` = `sluice-<job>-<worker>`, stable
//! across restarts, so a restarted job fences its zombie) writes a batch's records and commits
//! its partitions' offsets to the consumer group inside the same transaction
//! (`send_offsets_to_transaction`). Readers with `isolation.level=read_committed` see every
//! record once; an aborted or interrupted batch is replayed from the committed offsets, and a
//! replayed batch whose offsets the group already holds is not written again.

use super::transactional::Transactional;
use super::{KafkaSink, OutRecord};
use crate::dstream::partition::PartitionId;
use crate::sink::{BatchId, OutputError, Sink};
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
        let worker = items.ctx.info.index;
        items.write_to(WithOffsets {
            tx: Transactional::new(sink, format!("sluice-{job}-{worker}"), group.to_owned()),
            job: job.to_owned(),
            to_records,
            out: Vec::new(),
            offsets: Vec::new(),
        });
    }
}

/// `write_kafka_exactly_once` as a [`Sink`]: a worker's records of a batch and its partitions'
/// new offsets in one transaction at commit; a batch in doubt whose offsets the group holds is
/// skipped.
struct WithOffsets<F> {
    tx: Transactional,
    job: String,
    to_records: F,
    out: Vec<OutRecord>,
    /// (topic, partition, next offset) of each partition of the batch with records.
    offsets: Vec<(String, i32, i64)>,
}

impl<F: Fn(&ConsumerRecord) -> Vec<OutRecord> + 'static> Sink<KafkaItem> for WithOffsets<F> {
    fn open(&mut self, _batch: &BatchId) -> Result<(), OutputError> {
        self.out.clear();
        self.offsets.clear();
        Ok(())
    }

    fn write(
        &mut self,
        _: &BatchId,
        _: &PartitionId,
        items: &[KafkaItem],
    ) -> Result<(), OutputError> {
        for item in items {
            match item {
                KafkaItem::Record(r) => self.out.extend((self.to_records)(r)),
                KafkaItem::Range(r) if r.until > r.from => {
                    self.offsets.push((r.topic.clone(), r.partition, r.until))
                }
                KafkaItem::Range(_) => {}
            }
        }
        Ok(())
    }

    fn commit(&mut self, batch: &BatchId) -> Result<(), OutputError> {
        if self.out.is_empty() && self.offsets.is_empty() {
            return Ok(());
        }
        if batch.in_doubt && !self.offsets.is_empty() {
            // Replayed after a crash: committed already if the group holds its offsets.
            let parts: Vec<(String, i32)> = self
                .offsets
                .iter()
                .map(|(t, p, _)| (t.clone(), *p))
                .collect();
            let committed = self
                .tx
                .committed(&parts)
                .map_err(|e| OutputError::from_failure(failure(e)))?;
            let done = committed
                .iter()
                .zip(&self.offsets)
                .all(|(c, (_, _, next))| c.is_some_and(|c| c >= *next));
            if done {
                return Ok(());
            }
        }
        self.tx
            .write(&self.out, &self.offsets)
            .map_err(OutputError::from_failure)
    }

    fn name(&self) -> String {
        format!("kafka sink {}", self.job)
    }
}
