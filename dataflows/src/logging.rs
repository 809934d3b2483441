//! Logging through `tracing`, quiet by default.
//!
//! Spark's INFO noise has to be silenced by hand (the course sets log4j levels in every job);
//! sluice shows only warnings and errors unless asked: `-v` for info, `-vv` for per-batch debug
//! lines, or `RUST_LOG` for anything finer.

/// Installs a stderr logger: warnings by default, `info` with `verbosity` 1, `debug` with 2+.
/// `RUST_LOG`, when set, wins. Calling it twice is harmless.
pub fn init(verbosity: u8) {
    let default = match verbosity {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
