//! The course's network word count (§2.2) as a library program: lines from a TCP server,
//! split into words, counted per 1 s batch and printed as Spark's `print()` prints them.
//!
//! ```text
//! cargo run --bin sluice -- feed socket --port 9999      # or: nc -lk 9999, and type lines
//! cargo run --example network_wordcount -- 9999 [batches]
//! ```

use std::time::Duration;

use sluice::{StreamingConfig, StreamingContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().as_deref().unwrap_or("9999").parse()?;
    let batches: Option<u64> = args.next().map(|b| b.parse()).transpose()?;
    let mut config = StreamingConfig::new(Duration::from_secs(1))?;
    if let Some(n) = batches {
        config = config.max_batches(n);
    }
    StreamingContext::new(config).run(move |job| {
        job.socket_text_stream("127.0.0.1", port)
            .flat_map(|line| sluice::text::words(line).map(|word| (word, 1u64)))
            .reduce_by_key(|a, b| a + b)
            .print(10);
    })?;
    Ok(())
}
