//! Logging through `tracing`, quiet by default, secrets redacted.
//!
//! Spark's INFO noise has to be silenced by hand (the course sets log4j levels in every job);
//! sluice shows only warnings and errors unless asked: `-v` for sluice's info lines, `-vv` for
//! its per-batch debug lines; other crates stay at `warn` unless `RUST_LOG` asks for more.
//! Every line passes through [`sluice::redact::redact`] on its way to stderr.

use std::io::Write;

/// Installs a stderr logger: warnings by default; sluice's own `info` with `verbosity` 1,
/// `debug` with 2+. `RUST_LOG`, when set, wins. Calling it twice is harmless.
pub fn init(verbosity: u8) {
    let ours = match verbosity {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let default = format!("warn,sluice={ours}");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Redacting(std::io::stderr()))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A writer that redacts what it is given (the formatter writes one event per call).
struct Redacting<W: Write>(W);

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(sluice::redact::redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
