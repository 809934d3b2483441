//! `network-wordcount`: the course's first job (seed §2.2): count the words of each batch of
//! lines read from a socket, `flatMap(_.split("\\s+")).map((_, 1)).reduceByKey(_ + _).print()`.

use sluice::{Result, StreamingContext};

use crate::common::{CommonArgs, LineSourceArgs};

/// Flags of `sluice run network-wordcount`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub source: LineSourceArgs,
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        let config = common.config()?;
        let source = args.source.source()?;
        let print = common.print;
        StreamingContext::new(config).run(move |job| {
            source
                .word_ones(job)
                .reduce_by_key(|a, b| a + b)
                .print(print);
        })
    }
}
