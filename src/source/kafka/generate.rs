//! The Kafka direct stream's part in the job generator (`context::generator`): at each batch
//! time, the log-end offsets of a reader's partitions (what batch `t` holds, Spark's rule), the
//! record the checkpoint keeps of them, and how many records that makes for the queued batch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::KafkaConfig;
use super::read::offsets_client;
use super::samples::SharedSamples;
use crate::offsets::TopicPartition;
use crate::source::{BatchTimeHook, Generated};

/// The batches a reader has cut, as its generator hook sees them.
#[derive(Default)]
pub(super) struct CutSoFar {
    /// The last batch cut: the generator does not sample it or earlier ones.
    pub(super) through: u64,
    /// The partitions the generator samples (this worker's), each with where the last batch
    /// cut ends (for the count of a queued batch's records).
    pub(super) ends: BTreeMap<TopicPartition, i64>,
}

/// A sample as the checkpoint records it: (topic, partition, log-end offset).
pub(super) type RecordedSample = Vec<(String, i32, i64)>;

/// The generator's hook of one reader: at batch time `t`, the log-end offset of each of the
/// reader's partitions (recorded in the checkpoint), and how many records that makes for the
/// batch: from where the batch before it ends (cut, or generated and queued) to the log's end,
/// within `max_rate_per_partition` (backpressure may take fewer when the batch is cut).
pub(super) fn sample_at_batch_time(
    config: Arc<KafkaConfig>,
    batch_ms: u64,
    sampled: Arc<std::sync::Mutex<CutSoFar>>,
    samples: SharedSamples<BTreeMap<TopicPartition, i64>>,
) -> BatchTimeHook {
    let client: std::sync::Mutex<Option<BaseConsumer>> = std::sync::Mutex::new(None);
    // Where the batches generated so far end, per partition.
    let generated_ends: std::sync::Mutex<BTreeMap<TopicPartition, i64>> = Default::default();
    Box::new(move |t| {
        if samples.contains(t) {
            return None; // recovered from the checkpoint: generated before the restart
        }
        let cut_ends = match sampled.lock() {
            // Cut already (the worker was on time): the reader fixed it itself.
            Ok(cut) if cut.through >= t => return None,
            Ok(cut) => cut.ends.clone(),
            Err(_) => return None,
        };
        if cut_ends.is_empty() {
            return None;
        }
        let mut client = client.lock().unwrap_or_else(|p| p.into_inner());
        if client.is_none() {
            *client = offsets_client(&config).ok();
        }
        let consumer = client.as_ref()?;
        let mut highs = BTreeMap::new();
        for tp in cut_ends.keys() {
            // A partition the broker does not answer for now is read as it is when cut.
            if let Ok((_, high)) =
                consumer.fetch_watermarks(&tp.topic, tp.partition, Duration::from_millis(500))
            {
                highs.insert(tp.clone(), high);
            }
        }
        let mut ends = generated_ends.lock().unwrap_or_else(|p| p.into_inner());
        let starts: BTreeMap<TopicPartition, i64> = highs
            .keys()
            .map(|tp| {
                let cut = cut_ends.get(tp).copied().unwrap_or(0);
                (tp.clone(), ends.get(tp).map_or(cut, |g| cut.max(*g)))
            })
            .collect();
        let lags = highs
            .iter()
            .map(|(tp, high)| (tp.clone(), (high - starts[tp]).max(0)))
            .collect();
        let caps = config.per_batch_caps(batch_ms, None, &lags);
        let mut records = 0u64;
        for (tp, high) in &highs {
            let start = starts[tp];
            let cap = caps.get(tp).copied().flatten();
            let end = cap.map_or(*high, |c| (*high).min(start + c)).max(start);
            records += (end - start) as u64;
            ends.insert(tp.clone(), end);
        }
        let recorded: RecordedSample = highs
            .iter()
            .map(|(tp, high)| (tp.topic.clone(), tp.partition, *high))
            .collect();
        samples.put(t, highs);
        Some(Generated {
            record: crate::checkpoint::codec::encode(&recorded).ok()?,
            records: Some(records),
        })
    })
}
