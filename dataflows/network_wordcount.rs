//! `network-wordcount`: the course's first job (seed §2.2): count the words of each batch of
//! lines read from a socket, `flatMap(_.split("\\s+")).map((_, 1)).reduceByKey(_ + _).print()`.

use sluice::{Result, StreamingContext};

use crate::common::{CommonArgs, LineSourceArgs};

/// Flags of `sluice run network-wordcount`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub source: LineSourceArgs,
}

/// Runs the job until it is stopped.
pub fn run(args: Args) -> Result<()> {
    let config = args.common.config()?;
    let socket = args.source.socket_options()?;
    let generator = args.source.generator();
    let host = args.source.host.clone();
    let port = args.source.port;
    let print = args.common.print;
    if host.is_none() {
        eprintln!(
            "sluice: no --host given: counting {} generated words/s (use --host 127.0.0.1 --port 9999 with `nc -lk 9999` for your own input)",
            generator.rate_per_sec
        );
    }
    StreamingContext::new(config).run(move |job| {
        let lines = match &host {
            Some(h) => job.socket_text_stream_with(h, port, socket.clone()),
            None => job.generator(generator.clone()),
        };
        lines
            .flat_map(|line| {
                line.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .map(|word| (word, 1u64))
            .reduce_by_key(|a, b| a + b)
            .print(print);
    })
}
