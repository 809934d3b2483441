//! How the fault matrix reports: notes cut to a line, and progress lines a CI log shows live.

use std::io::Write;

/// `s` on one line, at most 160 characters.
pub fn shorten(s: &str) -> String {
    let s = s.trim().replace('\n', " | ");
    if s.len() > 160 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(160).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

/// A line on the test's standard error even under the test harness's capture, so that a CI
/// log shows each case as it ends (and which one a slow run is still in).
pub fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
