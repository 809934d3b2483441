//! Entry points of the fuzz targets in `fuzz/` (`cargo +nightly fuzz run <target>`), and of
//! `tests/fuzz_corpus.rs`, which runs every kept corpus input through them on stable. Not an
//! API: each takes outside bytes the way sluice's own reader takes them, through the same
//! code, and panics only where that code would (which is the bug a target looks for) or where
//! an invariant of the parser does not hold.
//!
//! | target | the bytes | the code |
//! |---|---|---|
//! | [`checkpoint_dir`] | a whole checkpoint directory, packed (see [`unpack`]) | `Checkpoint::open`, snapshot choice, state restore, every source's plan decoding |
//! | [`framed_file`] | one framed checkpoint file | `parse_framed` for every kind, then the payload's decoding |
//! | [`plan_log`] | one plan log | `parse_log`, plan records, the queue, socket and Kafka plan decoders |
//! | [`write_ahead_log`] | one write-ahead-log segment | `parse_log` and the receiver's line numbering |
//! | [`line_splitter`] | socket bytes, in chunks | the receiver's line framer |
//! | [`hostfile`] | a hostfile | the `-h/--hostfile` parser |
//!
//! The ETL record parser lives in the `sluice` binary; its target includes that file.

use std::collections::BTreeMap;
use std::path::Path;

use crate::checkpoint::file::{Kind, parse_framed, parse_log};
use crate::checkpoint::{Checkpoint, CheckpointConfig, StateStore, codec};
use crate::source::receiver::framing::{Framed, LineFramer};

/// Splits a packed directory into `(relative path, bytes)`: repeated `[name length: u8][name]
/// [length: u16 le][bytes]`; names are kept to `[A-Za-z0-9._/-]` without `..` or a leading `/`.
pub fn unpack(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let n = data[at] as usize;
        let Some(name) = data.get(at + 1..at + 1 + n) else {
            break;
        };
        at += 1 + n;
        let Some(len) = data.get(at..at + 2) else {
            break;
        };
        let len = u16::from_le_bytes([len[0], len[1]]) as usize;
        at += 2;
        let bytes = data.get(at..(at + len).min(data.len())).unwrap_or(&[]);
        at += len;
        let name: String = name
            .iter()
            .map(|&b| b as char)
            .filter(|c| c.is_ascii_alphanumeric() || "._/-".contains(*c))
            .collect();
        let name = name.trim_start_matches('/').replace("..", "_");
        if !name.is_empty() {
            files.push((name, bytes.to_vec()));
        }
    }
    files
}

/// Packs files into the format [`unpack`] reads (for seeding a corpus from a real checkpoint).
pub fn pack(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        let name = &name.as_bytes()[..name.len().min(255)];
        let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// Opens a checkpoint directory made of `data` as a restarting job would (1 s batches):
/// metadata, plans, completed batch, snapshots, the choice of snapshot, every
/// operator's state restored as word counts, and every recorded plan through the decoders of
/// the queue, socket and Kafka sources.
pub fn checkpoint_dir(data: &[u8]) {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sluice-fuzz-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (name, bytes) in unpack(data) {
        let path = dir.join(&name);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&path, &bytes);
    }
    open_as_a_restart(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

fn open_as_a_restart(dir: &Path) {
    let config = CheckpointConfig {
        dir: dir.to_path_buf(),
        interval_ms: None,
        incremental: true,
        accept_source_change: false,
    };
    let Ok(checkpoint) = Checkpoint::open(&config, 1000, 1_000_000, None, 0) else {
        return;
    };
    if checkpoint.first_batch().is_err() {
        return;
    }
    let _ = checkpoint.completed();
    for name in checkpoint.snapshot_operators() {
        for worker in 0..2 {
            let store = StateStore::new(checkpoint.clone(), &name, worker, 2);
            let _ = store.restore::<String, u64>();
        }
    }
    for key in checkpoint.plan_keys() {
        for plans in checkpoint.source_recovery(&key).plans.values() {
            for plan in plans {
                decode_plans(plan);
            }
        }
    }
}

/// One framed file, read as every kind it could be, its payload decoded as that kind is.
pub fn framed_file(data: &[u8]) {
    let path = Path::new("fuzz");
    for kind in [
        Kind::Metadata,
        Kind::Manifest,
        Kind::StatePart,
        Kind::Completed,
        Kind::StateDelta,
    ] {
        if let Ok(payload) = parse_framed(path, kind, data.to_vec()) {
            assert!(payload.len() <= data.len());
            match kind {
                Kind::Metadata | Kind::Manifest => {
                    let _ = serde_json::from_slice::<serde_json::Value>(&payload);
                }
                Kind::StatePart => {
                    let _ = codec::decode::<Vec<(String, u64, u64)>>(&payload);
                }
                Kind::StateDelta => {
                    if let Some((_, changes)) = payload.split_first_chunk::<8>() {
                        let _ = codec::decode::<Vec<(String, Option<(u64, u64)>)>>(changes);
                    }
                }
                Kind::Completed => {
                    let _ = codec::decode::<u64>(&payload);
                }
            }
        }
    }
}

/// One plan log: its intact records, read as plan records, each plan through every source's
/// decoder.
pub fn plan_log(data: &[u8]) {
    let path = Path::new("fuzz.log");
    let Ok(records) = parse_log(path, data) else {
        return;
    };
    let mut plans = BTreeMap::new();
    crate::checkpoint::plans::add_plan_records(&mut plans, path, &records);
    for sources in plans.values() {
        for plan in sources.values().flatten() {
            decode_plans(plan);
        }
    }
    // The log's records themselves, as a plan would be read if the record were one.
    for r in &records {
        decode_plans(r);
    }
}

fn decode_plans(plan: &[u8]) {
    let _ = codec::decode::<(u64, u64)>(plan);
    if let Some(((from, until), blocks)) = crate::source::receiver::decode_plan(plan) {
        assert!(from <= until);
        assert_eq!(blocks.iter().sum::<u64>(), until - from);
    }
    let _ = codec::decode::<Vec<(String, i32, i64, i64)>>(plan);
}

/// One write-ahead-log segment: its records, numbered into lines as the receiver does.
pub fn write_ahead_log(data: &[u8]) {
    let Ok(records) = parse_log(Path::new("fuzz.wal"), data) else {
        return;
    };
    let mut lines = BTreeMap::new();
    crate::source::receiver::wal::add_records(&mut lines, &records);
    assert!(lines.len() <= data.len());
}

/// Socket bytes cut into chunks: the first byte sets the longest line (1–256 bytes) and the
/// second the chunk size (1–256). Checks that every `\n` ends exactly one line or dead letter,
/// that no line holds a `\n` or is longer than the limit, and that a dead letter keeps at most
/// 256 bytes.
pub fn line_splitter(data: &[u8]) {
    let [max, chunk, bytes @ ..] = data else {
        return;
    };
    let (max, chunk) = (*max as usize + 1, *chunk as usize + 1);
    let mut framer = LineFramer::new(max);
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk) {
        framer.push(piece, "fuzz", 1, &mut out);
    }
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(out.len(), newlines);
    for framed in &out {
        match framed {
            Framed::Line(line) => {
                assert!(!line.contains('\n'));
                assert!(line.len() <= max);
            }
            Framed::Bad(m) => assert!(m.bytes.len() <= max.max(256)),
        }
    }
    if framer.has_partial() {
        let _ = framer.finish("fuzz", 1, Some("cut"));
    }
}

/// A hostfile for 1–4 processes (the first byte): an accepted one has exactly that many
/// `host:port` lines.
pub fn hostfile(data: &[u8]) {
    let [n, text @ ..] = data else {
        return;
    };
    let processes = (*n as usize % 4) + 1;
    let text = String::from_utf8_lossy(text);
    if let Ok(addresses) = crate::config::parse_hostfile(Path::new("hosts"), &text, processes) {
        assert_eq!(addresses.len(), processes);
        for a in &addresses {
            let (_, port) = a.rsplit_once(':').expect("host:port");
            assert!(port.parse::<u16>().is_ok());
        }
    }
}
