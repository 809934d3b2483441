//! `sluice history DIR`: Spark's history server for one job. Serves the web UI (the page and
//! the REST API) of a job that has ended — finished, failed or killed — from its event log, so
//! that the batch that failed can be read after the process is gone.

use std::path::PathBuf;
use std::sync::Arc;

use super::feed::FeedError;

/// `sluice history`.
#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
    /// The job's checkpoint directory (its `events/`), or the event log directory it was given
    /// with --event-log.
    pub dir: PathBuf,
    /// Serve this log of the directory instead of the newest.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// List the logs of the directory and exit.
    #[arg(long)]
    pub list: bool,
    /// Where to serve the UI.
    #[arg(long, default_value = "127.0.0.1:18080", value_name = "ADDR")]
    pub ui: String,
}

/// Runs `sluice history` until Ctrl-C.
pub fn run(args: HistoryArgs) -> Result<(), FeedError> {
    let dir = if args.dir.join("events").is_dir() {
        args.dir.join("events")
    } else {
        args.dir.clone()
    };
    let logs = sluice::webui::logs_in(&dir);
    if args.list {
        for log in &logs {
            println!("{}", log.display());
        }
        return Ok(());
    }
    let log = match args.log {
        Some(l) => l,
        None => logs.last().cloned().ok_or_else(|| FeedError::Config {
            problem: format!("{} holds no event log", args.dir.display()),
            fix: "name the job's checkpoint directory, or the directory given to --event-log"
                .into(),
        })?,
    };
    let status = sluice::webui::replay(&log).map_err(|e| FeedError::Config {
        problem: e.to_string(),
        fix: "give a log `sluice history DIR --list` shows".into(),
    })?;
    let metrics = Arc::new(sluice::metrics::Metrics::new(
        std::time::Duration::from_millis(status.job().batch_ms),
    ));
    let ui = sluice::webui::WebUi::start(&args.ui, Arc::new(status), metrics).map_err(|e| {
        FeedError::Config {
            problem: e.to_string(),
            fix: "give --ui another host:port".into(),
        }
    })?;
    eprintln!(
        "sluice history: {} at http://{}/ (Ctrl-C to stop)",
        log.display(),
        ui.local_addr()
    );
    loop {
        std::thread::park();
    }
}
