//! Kafka direct stream (Spark's `KafkaUtils.createDirectStream`, course §4.2.2, §4.3.2).
//!
//! No receiver: each Kafka partition is read by exactly one worker, chosen by a stable hash of
//! `(topic, partition)` over all workers of all processes (Spark's one task per partition), so
//! partitions added later do not move existing ones. For every batch `t`, each owning worker
//! first fixes the **batch plan** — the offset range `[from, until)` of each of its partitions,
//! `until` capped by the rate limit — and then reads exactly that range (records fetched past
//! `until` wait in a look-ahead buffer for the next batch). The ranges flow through the
//! dataflow as [`DirectStream::offset_ranges`] (Spark's `HasOffsetRanges`).
//!
//! Offsets of batch `t` go to the [`OffsetStore`](crate::offsets::OffsetStore) only after every
//! output of `t` has finished (the driver tells the reader when the job's probe passed `t`).
//! On start, offsets come from the store; partitions without one follow `auto.offset.reset`
//! (`earliest`, `latest`, or `none`: fail). A stored offset below the partition's earliest
//! (retention deleted the records) follows [`ExpiredOffsets`]. Partitions that appear while the
//! job runs are read from their earliest offset.
//!
//! Faults: when the broker is unreachable, the batch waits (reported every 5 s) and resumes
//! where it was; nothing is skipped or read twice.
//!
//! The parts, one file each: [`config`] (what the user sets), [`record`] (what a batch holds),
//! `assign` (which worker reads which partition, and from where), `read` (the batch plan and
//! the exact read of it), `commit` (offsets after the outputs), `client` (librdkafka errors).

mod assign;
pub(crate) mod client;
mod commit;
pub mod config;
mod read;
pub mod record;

pub use config::{Backpressure, ConsumerStrategy, ExpiredOffsets, KafkaConfig};
pub(crate) use read::KafkaReader;
pub(crate) mod receiver;
pub use record::ConsumerRecord;

use crate::dstream::DStream;
use crate::offsets::OffsetRange;

/// What a direct stream's source emits: records and the batch's offset ranges.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KafkaItem {
    /// A record.
    Record(ConsumerRecord),
    /// The offset range of one partition in this batch.
    Range(OffsetRange),
}

/// A Kafka direct stream: its records (through `Deref`) and its batches' offset ranges.
pub struct DirectStream<'s> {
    items: DStream<'s, KafkaItem>,
    records: DStream<'s, ConsumerRecord>,
    ranges: DStream<'s, OffsetRange>,
}

impl<'s> DirectStream<'s> {
    pub(crate) fn new(items: DStream<'s, KafkaItem>) -> Self {
        let records = items.flat_map(|i| match i {
            KafkaItem::Record(r) => Some(r),
            KafkaItem::Range(_) => None,
        });
        let ranges = items.flat_map(|i| match i {
            KafkaItem::Range(r) => Some(r),
            KafkaItem::Record(_) => None,
        });
        DirectStream {
            items,
            records,
            ranges,
        }
    }

    /// The records and ranges together, as the source emits them (for the sinks that commit
    /// a batch's offsets with its output).
    pub(crate) fn items(&self) -> &DStream<'s, KafkaItem> {
        &self.items
    }

    /// The same stream without the records `check` rejects, which are set aside in `dead`
    /// (once each, see [`DStream::try_map`]); the offset ranges are kept whole.
    /// For a sink that commits offsets with its output
    /// (`write_sql_with_offsets`): it then runs after the
    /// batch's malformed records are in the dead-letter file, so a batch whose offsets are
    /// committed never loses them.
    pub fn set_aside(
        &self,
        dead: &crate::source::DeadLetters,
        check: impl Fn(&ConsumerRecord) -> Result<(), crate::source::Malformed> + 'static,
    ) -> DirectStream<'s> {
        DirectStream::new(self.items.try_map(dead, move |item| match &item {
            KafkaItem::Record(r) => check(r).map(|()| item),
            KafkaItem::Range(_) => Ok(item),
        }))
    }

    /// The offset range of every partition of the job in every batch (Spark's
    /// `rdd.asInstanceOf[HasOffsetRanges].offsetRanges`); `foreach_batch` sees them all.
    pub fn offset_ranges(&self) -> DStream<'s, OffsetRange> {
        self.ranges.clone()
    }
    /// The records.
    pub fn records(&self) -> DStream<'s, ConsumerRecord> {
        self.records.clone()
    }
}

impl<'s> std::ops::Deref for DirectStream<'s> {
    type Target = DStream<'s, ConsumerRecord>;
    fn deref(&self) -> &DStream<'s, ConsumerRecord> {
        &self.records
    }
}
