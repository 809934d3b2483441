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
mod generate;
mod read;
pub mod record;
mod samples;

pub use config::{Backpressure, ConsumerStrategy, ExpiredOffsets, KafkaConfig};
pub(crate) use read::KafkaReader;
pub(crate) mod receiver;
pub use record::ConsumerRecord;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use crate::dstream::DStream;
use crate::dstream::partition::{Part, Parts};
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
    /// The records and the ranges apart, split once when first used (a sink that takes the
    /// items whole never pays for it).
    split: std::cell::OnceCell<(DStream<'s, ConsumerRecord>, DStream<'s, OffsetRange>)>,
}

impl<'s> DirectStream<'s> {
    pub(crate) fn new(items: DStream<'s, KafkaItem>) -> Self {
        DirectStream {
            items,
            split: std::cell::OnceCell::new(),
        }
    }

    fn split(&self) -> &(DStream<'s, ConsumerRecord>, DStream<'s, OffsetRange>) {
        self.split.get_or_init(|| {
            let (records, ranges) = split_items(&self.items);
            (self.items.derive(records), self.items.derive(ranges))
        })
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
        self.split().1.clone()
    }
    /// The records.
    pub fn records(&self) -> DStream<'s, ConsumerRecord> {
        self.split().0.clone()
    }
}

impl<'s> std::ops::Deref for DirectStream<'s> {
    type Target = DStream<'s, ConsumerRecord>;
    fn deref(&self) -> &DStream<'s, ConsumerRecord> {
        &self.split().0
    }
}

/// Splits a direct stream's chunks into its records and its offset ranges, one chunk of each
/// per input chunk (so both announce every partition), moving every record: one operator with
/// two outputs, where two `flat_map`s would each get a clone of every record.
fn split_items<'s>(
    items: &DStream<'s, KafkaItem>,
) -> (Parts<'s, ConsumerRecord>, Parts<'s, OffsetRange>) {
    let stream = items.stream.clone();
    let mut builder = OperatorBuilder::new("KafkaSplit".to_owned(), stream.scope());
    let mut input = builder.new_input(stream, Pipeline);
    let (mut records_out, records) = builder.new_output::<Vec<Part<ConsumerRecord>>>();
    let (mut ranges_out, ranges) = builder.new_output::<Vec<Part<OffsetRange>>>();
    builder.build(move |_| {
        let mut records_chunk = Vec::new();
        let mut ranges_chunk = Vec::new();
        move |_frontiers| {
            let mut records_handle = records_out.activate();
            let mut ranges_handle = ranges_out.activate();
            input.for_each(|cap, chunks| {
                for part in chunks.drain(..) {
                    let mut rs = Vec::with_capacity(part.records.len());
                    let mut ors = Vec::new();
                    for item in part.records {
                        match item {
                            KafkaItem::Record(r) => rs.push(r),
                            KafkaItem::Range(r) => ors.push(r),
                        }
                    }
                    records_chunk.push(Part::new(part.id.clone(), rs));
                    ranges_chunk.push(Part::new(part.id, ors));
                }
                records_handle.give(&cap, &mut records_chunk);
                ranges_handle.give(&cap, &mut ranges_chunk);
                records_chunk.clear();
                ranges_chunk.clear();
            });
        }
    });
    (records, ranges)
}
