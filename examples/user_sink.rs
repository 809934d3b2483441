//! A sink of the user's own, exactly-once across crashes: the course's word count from a
//! directory, its per-batch counts added to running totals in a Redis hash. Each partition's
//! increments and a marker of `(batch, partition)` go in one `MULTI`/`EXEC`; a batch replayed
//! after a crash (`BatchId::in_doubt`) skips the partitions whose marker is already there, so
//! no count is added twice (`tests/socket/examples.rs` SIGKILLs it in a loop).
//!
//! ```text
//! cargo run --example user_sink --features files,redis -- <dir> <checkpoint> [redis://127.0.0.1/] [prefix]
//! ```

use std::time::Duration;

use sluice::dstream::partition::PartitionId;
use sluice::sink::{BatchId, OutputError, Sink};
use sluice::{CompactString, StreamingConfig, StreamingContext};

/// Adds each batch's word counts to the hash `<prefix>:totals`, once.
struct RedisTotals {
    url: String,
    prefix: String,
    connection: Option<redis::Connection>,
    pending: Vec<(PartitionId, Vec<(CompactString, u64)>)>,
    pause: Duration,
}

/// A lost or refused connection may come back (retried); anything else is permanent.
fn classify(e: redis::RedisError) -> OutputError {
    if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_timeout() {
        OutputError::transient(e)
    } else {
        OutputError::permanent(e)
    }
}

impl Sink<(CompactString, u64)> for RedisTotals {
    fn open(&mut self, _batch: &BatchId) -> Result<(), OutputError> {
        self.pending.clear();
        if self.connection.is_none() {
            let client = redis::Client::open(self.url.as_str())?;
            self.connection = Some(client.get_connection().map_err(classify)?);
        }
        Ok(())
    }

    fn write(
        &mut self,
        _batch: &BatchId,
        partition: &PartitionId,
        records: &[(CompactString, u64)],
    ) -> Result<(), OutputError> {
        self.pending.push((partition.clone(), records.to_vec()));
        Ok(())
    }

    fn commit(&mut self, batch: &BatchId) -> Result<(), OutputError> {
        let con = self
            .connection
            .as_mut()
            .ok_or_else(|| OutputError::transient("not connected"))?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (partition, records) in &self.pending {
            let marker = format!("{}:done:{}:{partition}", self.prefix, batch.time.millis());
            if batch.in_doubt {
                let done: bool = redis::cmd("EXISTS")
                    .arg(&marker)
                    .query(con)
                    .map_err(classify)?;
                if done {
                    continue; // committed before the crash
                }
            }
            for (word, n) in records {
                pipe.cmd("HINCRBY")
                    .arg(format!("{}:totals", self.prefix))
                    .arg(word.as_str())
                    .arg(*n)
                    .ignore();
            }
            pipe.cmd("SET").arg(&marker).arg(1).ignore();
        }
        let result = pipe.query::<()>(con).map_err(classify);
        if result.is_ok() {
            // (`USER_SINK_PAUSE_MS`: a pause after the commit, before the job hears of it — the
            // window in which a crash leaves a batch written but not known to be; the crash
            // test widens it so that its kills land there.)
            std::thread::sleep(self.pause);
        }
        if matches!(result, Err(OutputError::Transient(_))) {
            self.connection = None; // reconnect on the retry
        }
        result
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What the job does on a restart (batches replayed, files known) on standard error.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(checkpoint)) = (args.first().cloned(), args.get(1).cloned()) else {
        eprintln!("usage: user_sink <dir> <checkpoint> [redis-url] [prefix]");
        std::process::exit(2);
    };
    let url = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "redis://127.0.0.1/".to_owned());
    let prefix = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| "sluice-user-sink".to_owned());
    let pause = Duration::from_millis(
        std::env::var("USER_SINK_PAUSE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0),
    );
    let config = StreamingConfig::new(Duration::from_millis(500))?.checkpoint(checkpoint);
    StreamingContext::new(config).run(move |job| {
        let sink = RedisTotals {
            url: url.clone(),
            prefix: prefix.clone(),
            connection: None,
            pending: Vec::new(),
            pause,
        };
        job.text_file_stream(&dir)
            .flat_map(|line| sluice::text::words(line).map(|word| (word, 1u64)))
            .reduce_by_key(|a, b| a + b)
            .write_to(sink);
    })?;
    Ok(())
}
