//! The course's blacklist filter (§5.1, `transform`) as a library program: each batch of
//! `ip##request` lines is joined with a static blacklist (Spark's `leftOuterJoin` with an RDD),
//! and only the lines whose IP is not listed are printed.
//!
//! ```text
//! cargo run --example blacklist_transform -- 9999 [batches]
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sluice::table::PairBatchExt;
use sluice::{StreamingConfig, StreamingContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().as_deref().unwrap_or("9999").parse()?;
    let batches: Option<u64> = args.next().map(|b| b.parse()).transpose()?;
    let mut config = StreamingConfig::new(Duration::from_secs(1))?;
    if let Some(n) = batches {
        config = config.max_batches(n);
    }
    // The course's blacklist: (ip, true).
    let blacklist: Arc<HashMap<String, bool>> = Arc::new(
        ["27.19.74.143", "110.52.250.126"]
            .map(|ip| (ip.to_owned(), true))
            .into(),
    );
    StreamingContext::new(config).run(move |job| {
        let blacklist = Arc::clone(&blacklist);
        job.socket_text_stream("127.0.0.1", port)
            .flat_map(|line: String| {
                let (ip, rest) = line.split_once("##")?;
                Some((ip.to_owned(), rest.to_owned()))
            })
            .transform(move |_time, batch| {
                batch
                    .left_outer_join(&blacklist)
                    .into_iter()
                    .filter(|(_, (_, listed))| listed.is_none())
                    .map(|(ip, (rest, _))| format!("{ip}##{rest}"))
            })
            .print(10);
    })?;
    Ok(())
}
