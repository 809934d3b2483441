//! What the command-line tests share: running the `sluice` binary and reading its output.

#![allow(dead_code)]

use std::process::{Command, Output};

/// The `sluice` binary of this build.
pub fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// Runs `sluice` with `args` to its end.
pub fn run(args: &[&str]) -> Output {
    sluice().args(args).output().expect("run sluice")
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
