//! The course's windowed word count (§5.3, `reduceByKeyAndWindow`) as a library program: the
//! counts of the last 3 s of input, every 2 s, over 1 s batches.
//!
//! ```text
//! cargo run --example windowed_wordcount -- 9999 [batches]
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
    let (window, slide) = (Duration::from_secs(3), Duration::from_secs(2));
    StreamingContext::new(config).run(move |job| {
        job.socket_text_stream("127.0.0.1", port)
            .flat_map(|line| sluice::text::words(line).map(|word| (word, 1u64)))
            .reduce_by_key_and_window(|a, b| a + b, window, slide)
            .print(10);
    })?;
    Ok(())
}
