//! `stateful-wordcount`: the course's running word count (seed §5.3): every batch prints the
//! total of every word since the job started, `updateStateByKey((seq, old) => Some(seq.sum +
//! old.getOrElse(0)))`.
//!
//! The update function is declared pure, so a batch costs what its words touch, not all words
//! ever seen; `--changes` prints only the totals that changed in the batch.

use sluice::{Result, StreamingContext};

use crate::common::{CommonArgs, LineSourceArgs, word_totals};

/// Flags of `sluice run stateful-wordcount`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub source: LineSourceArgs,
    /// Print only the totals that changed in each batch, as `((word,total),±1)`.
    #[arg(long)]
    pub changes: bool,
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        let config = common.config()?;
        let source = args.source.source()?;
        let (print, changes) = (common.print, args.changes);
        StreamingContext::new(config).run(move |job| {
            let totals = word_totals(&source.word_ones(job));
            if changes {
                totals.changes().print(print);
            } else {
                totals.print(print);
            }
        })
    }
}
