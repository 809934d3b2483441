//! `blacklist-filter`: the course's dynamic blacklist (seed §5.2): access-log lines
//! `ip##time##request##status##bytes` are keyed by IP and left-outer-joined in `transform`
//! with a blacklist; lines whose IP is listed are dropped, the rest printed as `(ip,rest)`.
//!
//! The blacklist is a file of one IP per line (`#` starts a comment), re-read when it changes,
//! so IPs can be added while the job runs. Lines without `##` are malformed: counted, logged and
//! written to `--dead-letter` when given.

use std::path::PathBuf;
use std::time::Duration;

use sluice::source::{BatchReader, BatchSlot, Malformed};
use sluice::table::{PairBatchExt, ReloadingTable};
use sluice::{Result, StreamingContext};

use crate::common::{CommonArgs, LineSourceArgs};

/// Flags of `sluice run blacklist-filter`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[command(flatten)]
    pub source: LineSourceArgs,
    /// File with one blacklisted IP per line, re-read when it changes (default: the course's
    /// two IPs, 27.19.74.143 and 110.52.250.126).
    #[arg(long, value_name = "FILE")]
    pub blacklist: Option<PathBuf>,
}

const COURSE_BLACKLIST: &str = "27.19.74.143\n110.52.250.126\n";

const SAMPLE_LOG: &[&str] = &[
    "27.19.74.143##2016-05-30 17:38:20##GET /static/image/common/faq.gif HTTP/1.1##200##1127",
    "110.52.250.126##2016-05-30 17:38:20##GET /data/cache/style_1_widthauto.css?y7a HTTP/1.1##200##1292",
    "8.35.201.144##2016-05-30 17:38:20##GET /static/image/common/hot_1.gif HTTP/1.1##200##680",
    "220.181.89.156##2016-05-30 17:38:20##GET /home.php?mod=space&uid=7391 HTTP/1.1##200##13468",
    "211.97.15.179##2016-05-30 17:38:22##GET /forum.php HTTP/1.1##200##26432",
];

/// The course's sample access log, a few lines per batch (input when no --host is given).
struct SampleLog {
    next: usize,
    per_batch: usize,
}

impl BatchReader<String> for SampleLog {
    fn name(&self) -> String {
        "sample access log".into()
    }
    fn read_batch(&mut self, slot: &BatchSlot, out: &mut sluice::source::BatchOut<String>) -> u64 {
        if slot.worker == 0 {
            for _ in 0..self.per_batch {
                out.push(SAMPLE_LOG[self.next % SAMPLE_LOG.len()].to_owned());
                self.next += 1;
            }
        }
        0
    }
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        let config = common.config()?;
        let socket = args.source.socket_options()?;
        let dead_letters = socket.dead_letters.clone();
        let blacklist_path = match &args.blacklist {
            Some(p) => p.clone(),
            None => {
                let p = std::env::temp_dir()
                    .join(format!("sluice-blacklist-{}.txt", std::process::id()));
                std::fs::write(&p, COURSE_BLACKLIST).map_err(|source| sluice::SluiceError::Io {
                    action: "cannot write the default blacklist",
                    path: p.clone(),
                    source,
                })?;
                p
            }
        };
        let blacklist =
            ReloadingTable::from_file(&blacklist_path, Duration::from_millis(500), |line| {
                Some((line.split_whitespace().next()?.to_owned(), true))
            })?;
        let host = args.source.host.clone();
        let port = args.source.port;
        let print = common.print;
        if host.is_none() {
            eprintln!(
                "sluice: no --host given: filtering the course's sample access log (use --host/--port for your own input)"
            );
        }
        StreamingContext::new(config).run(move |job| {
            let lines = match &host {
                Some(h) => job.socket_text_stream_with(h, port, socket.clone()),
                None => job.source(SampleLog {
                    next: 0,
                    per_batch: 5,
                }),
            };
            let ip_to_rest =
                lines.try_map(&dead_letters, |line: String| match line.split_once("##") {
                    Some((ip, rest)) => Ok((ip.to_owned(), rest.to_owned())),
                    None => Err(Malformed {
                        source: "blacklist-filter".into(),
                        position: String::new(), // try_map names it by batch, partition and index
                        reason: "no `##` separator after the IP".into(),
                        bytes: line.into_bytes(),
                    }),
                });
            let blacklist = blacklist.clone();
            ip_to_rest
                .transform(move |_time, batch| {
                    let listed = blacklist.current();
                    batch
                        .left_outer_join(&listed)
                        .into_iter()
                        .filter(|(_, (_, hit))| hit.is_none())
                        .map(|(ip, (rest, _))| (ip, rest))
                })
                .print(print);
        })
    }
}
