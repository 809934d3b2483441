//! `sluice checkpoint show DIR`: what a checkpoint holds (job, batch interval, last completed
//! batch, snapshots and their operators, recorded plans, write-ahead logs, stored offsets) and
//! what a restart on it will do. Read-only.

use std::fmt::Write;

use sluice::Time;
use sluice::checkpoint::Inspection;

/// The `sluice checkpoint` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum CheckpointCmd {
    /// Print what a checkpoint directory holds and what a restart will do with it.
    Show {
        /// The directory given to the job with `--checkpoint`.
        dir: std::path::PathBuf,
    },
}

/// Runs a `sluice checkpoint` subcommand: the report on standard output.
pub fn run(cmd: CheckpointCmd) -> sluice::Result<()> {
    let CheckpointCmd::Show { dir } = cmd;
    print!("{}", report(&sluice::checkpoint::inspect(&dir)?));
    Ok(())
}

/// The report, as printed.
pub fn report(i: &Inspection) -> String {
    let mut s = String::new();
    let t = |ms: u64| format!("{} ({})", Time::from_millis(ms), utc(ms));
    let _ = writeln!(s, "checkpoint       {}", i.dir.display());
    let _ = writeln!(
        s,
        "job              {}",
        i.job.as_deref().unwrap_or("(unnamed)")
    );
    let _ = writeln!(s, "batch interval   {} ms", i.batch_ms);
    let _ = writeln!(s, "first batch      {}", t(i.zero_ms));
    let _ = writeln!(
        s,
        "completed        {}",
        i.completed_ms.map(t).unwrap_or_else(|| "none yet".into())
    );
    match i.plan_range {
        Some((a, b)) => {
            let _ = writeln!(
                s,
                "batch plans      {} batches, {} … {}; sources: {}",
                i.plan_batches,
                Time::from_millis(a),
                Time::from_millis(b),
                i.plan_sources.join(", ")
            );
        }
        None => {
            let _ = writeln!(s, "batch plans      none");
        }
    }
    for (key, identity) in &i.sources {
        let _ = writeln!(s, "source           {key}: {identity}");
    }
    for (holder, held) in &i.owners {
        let state = match held {
            Some(true) => "held by",
            Some(false) => "last held by",
            None => "held by",
        };
        let _ = writeln!(s, "owner            {state} {holder}");
    }
    if i.snapshots.is_empty() {
        let _ = writeln!(s, "snapshots        none");
    }
    for snap in &i.snapshots {
        let ops: Vec<String> = snap
            .operators
            .iter()
            .map(|(name, bytes)| format!("{name} {bytes} B"))
            .collect();
        let bases: Vec<String> = snap
            .bases
            .iter()
            .map(|&t| Time::from_millis(t).to_string())
            .collect();
        let _ = writeln!(
            s,
            "snapshot         {}  {} worker(s)  {}{}{}",
            Time::from_millis(snap.batch_ms),
            snap.workers,
            if ops.is_empty() {
                "no state".into()
            } else {
                ops.join(", ")
            },
            if bases.is_empty() {
                String::new()
            } else {
                format!("  (changes since {})", bases.join(", "))
            },
            snap.unusable
                .as_ref()
                .map(|why| format!("  UNUSABLE: {why}"))
                .unwrap_or_default()
        );
    }
    for (source, segments, bytes) in &i.write_ahead_logs {
        let _ = writeln!(
            s,
            "write-ahead log  {source}: {segments} segment(s), {bytes} B"
        );
    }
    for o in &i.offsets {
        let _ = writeln!(
            s,
            "offset           group {} topic {} partition {}: next {}",
            o.group,
            o.topic,
            o.partition,
            o.offset
                .map(|o| o.to_string())
                .unwrap_or_else(|| "(unreadable)".into())
        );
    }
    let _ = writeln!(s, "a restart        {}", i.restart_plan());
    s
}

fn utc(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S%.3f UTC").to_string())
        .unwrap_or_default()
}
