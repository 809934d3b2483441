//! `file-wordcount`: the course's directory-monitoring job (seed §3): count the words of the
//! files that appear in a directory, per batch (`ssc.textFileStream(dir)` with
//! `flatMap(_.split(" ")).map((_, 1)).reduceByKey(_ + _).print()`).
//!
//! `--dir` is a local directory, `s3://bucket/prefix` (credentials and endpoint from the
//! `AWS_*` variables) or `hdfs://namenode:port/dir` (with the `hdfs` feature). Files moved in,
//! copied in or uploaded are read once each, when complete; with `--checkpoint` a restarted job
//! replays its batches with the same files and reads none twice.

use std::path::PathBuf;
use std::time::Duration;

use sluice::source::DeadLetters;
use sluice::source::file::{FileCompletion, FileStreamOptions};
use sluice::{Result, SluiceError, StreamingContext};

use crate::common::{CommonArgs, word_pairs};

/// Flags of `sluice run file-wordcount`.
#[derive(Clone, Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// The directory to watch: a local path, `s3://bucket/prefix` or `hdfs://host:port/dir`.
    #[arg(long, value_name = "DIR|URL")]
    pub dir: String,
    /// Read only files whose path (below --dir) matches this glob (`*.txt`, `**/*.log`).
    #[arg(long, value_name = "GLOB")]
    pub glob: Option<String>,
    /// Watch subdirectories too.
    #[arg(long)]
    pub recursive: bool,
    /// Also read the files already there at start that changed within the last minute
    /// (Spark's `newFilesOnly = false`).
    #[arg(long)]
    pub include_existing: bool,
    /// When a file is complete: `quiet:DURATION` (unchanged that long; default on local disks
    /// and HDFS, 1s), `visible` (at first sight; default on S3) or `marker:SUFFIX` (once
    /// `<file>SUFFIX` exists beside it).
    #[arg(long, value_name = "RULE", value_parser = completion)]
    pub complete_when: Option<FileCompletion>,
    /// At most this many new files per batch; the rest wait for the next batches.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_files_per_batch: Option<u64>,
    /// Longest accepted line in bytes; longer lines are set aside as malformed.
    #[arg(long, default_value_t = 1 << 20, value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_line_bytes: u64,
    /// Append malformed lines (not UTF-8, too long) to this file, one tab-separated line each.
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
}

/// `quiet:1s`, `visible`, `marker:.done`.
fn completion(s: &str) -> std::result::Result<FileCompletion, String> {
    let bad = || {
        format!(
            "`{s}` is not a completion rule: give quiet:DURATION (quiet:2s), visible, or marker:SUFFIX (marker:.done)"
        )
    };
    match s.split_once(':') {
        None if s == "visible" => Ok(FileCompletion::Visible),
        Some(("quiet", d)) => sluice::time::parse_duration(d)
            .map(FileCompletion::Quiet)
            .map_err(|e| format!("{}: {e}", bad())),
        Some(("marker", suffix)) if !suffix.is_empty() => Ok(FileCompletion::Marker(suffix.into())),
        _ => Err(bad()),
    }
}

impl Args {
    /// The stream's options from the flags.
    pub fn options(&self) -> Result<FileStreamOptions> {
        let mut options = FileStreamOptions {
            new_files_only: !self.include_existing,
            recursive: self.recursive,
            completion_rule: self.complete_when.clone(),
            max_files_per_batch: self.max_files_per_batch.map(|n| n as usize),
            max_line_bytes: self.max_line_bytes as usize,
            dead_letters: match &self.dead_letter {
                Some(path) => {
                    crate::paths::dead_letter_file(path)?;
                    DeadLetters::to_file(path)?
                }
                None => DeadLetters::counting(),
            },
            remember: Duration::from_secs(60),
            ..FileStreamOptions::default()
        };
        if let Some(g) = &self.glob {
            options = options.glob(g);
        }
        Ok(options)
    }
}

impl crate::Dataflow for Args {
    fn run(self: Box<Self>, common: &CommonArgs) -> Result<()> {
        let args = *self;
        if args.dir.is_empty() {
            return Err(SluiceError::InvalidConfig {
                problem: "--dir is empty".into(),
                fix: "give the directory to watch, e.g. --dir /data/in or --dir s3://bucket/in"
                    .into(),
            });
        }
        let config = common.config()?;
        let options = args.options()?;
        let (dir, print) = (args.dir.clone(), common.print);
        StreamingContext::new(config).run(move |job| {
            job.file_stream(&dir, options.clone())
                .flat_map(|line: String| word_pairs(line))
                .reduce_by_key(|a, b| a + b)
                .print(print);
        })
    }
}
