//! `driver-ha-wordcount`: the course's driver-HA job (seed §7.3): a running word count over lines
//! from a TCP server, checkpointed to `--checkpoint` and restartable with `getOrCreate`.
//!
//! Spark recovers such a job from its checkpoint and the receiver's write-ahead log; so does
//! sluice: the totals (`word-totals`) are snapshotted, every batch's lines are recorded by the
//! receiver's write-ahead log before the batch runs (on by default here), and lines received but
//! not yet in a batch survive a crash too. Restart it with the same flags after a crash (or let
//! a supervisor do it, as `spark-submit --supervise`) and the totals go on where they were.

use sluice::source::SocketOptions;
use sluice::{Result, StreamingContext};

use crate::common::{CommonArgs, word_pairs, word_totals};

/// Flags of `sluice run driver-ha-wordcount`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// The TCP server to read lines from.
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Its port.
    #[arg(long, default_value_t = 9999)]
    pub port: u16,
    /// Do not keep the receiver's write-ahead log (lines not yet in a batch are lost in a crash).
    #[arg(long)]
    pub no_wal: bool,
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        let Some(dir) = common.checkpoint.clone() else {
            return Err(sluice::SluiceError::InvalidConfig {
                problem: "driver-ha-wordcount needs a checkpoint directory".into(),
                fix: "add --checkpoint DIR (kept across restarts, as Spark's checkpoint)".into(),
            });
        };
        let common = common.clone();
        let ssc = StreamingContext::get_or_create(&dir, || common.config())?;
        let options = if args.no_wal {
            SocketOptions::default().without_write_ahead_log()
        } else {
            SocketOptions::default().with_write_ahead_log()
        };
        let (host, port, print) = (args.host.clone(), args.port, common.print);
        ssc.run(move |job| {
            let words = job
                .socket_text_stream_with(&host, port, options.clone())
                .flat_map(|line: String| word_pairs(line));
            word_totals(&words).print(print);
        })
    }
}
