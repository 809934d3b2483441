//! The course's running word count (§5.2, `updateStateByKey`) as a library program: totals
//! since the start, kept in a checkpoint directory so that a restarted job goes on from them.
//!
//! ```text
//! cargo run --example stateful_wordcount -- 9999 /tmp/wordcount-checkpoint [batches]
//! ```

use std::time::Duration;

use sluice::{StreamingConfig, StreamingContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().as_deref().unwrap_or("9999").parse()?;
    let checkpoint = args
        .next()
        .unwrap_or_else(|| "wordcount-checkpoint".to_owned());
    let batches: Option<u64> = args.next().map(|b| b.parse()).transpose()?;
    let mut config = StreamingConfig::new(Duration::from_secs(1))?.checkpoint(checkpoint);
    if let Some(n) = batches {
        config = config.max_batches(n);
    }
    StreamingContext::new(config).run(move |job| {
        job.socket_text_stream("127.0.0.1", port)
            .flat_map(|line| sluice::text::words(line).map(|word| (word, 1u64)))
            .update_state_by_key(|new: Vec<u64>, total: Option<u64>| {
                Some(new.iter().sum::<u64>() + total.unwrap_or(0))
            })
            .print(10);
    })?;
    Ok(())
}
