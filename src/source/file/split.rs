//! File splits (one partition of a batch each, as Spark's `FileInputFormat` cuts them) and
//! the lines of one split.
//!
//! A plain file of more than `max_split_bytes` is cut into splits of that size; a compressed
//! one (`.gz`, `.zst`, `.zstd`) is one split, since neither format can be entered in the
//! middle. Lines are Hadoop's `LineRecordReader`'s: a line belongs to the split in which it
//! **starts** (a split other than the first skips the line it starts inside of, or at; the
//! line starting exactly at a split's end is that split's), so every line is read exactly once
//! however the file is cut. Lines end at `\n`, a trailing `\r` is removed, and a last line
//! without `\n` counts.

use crate::error::Result;
use crate::source::Malformed;
use crate::storage::{Entry, Location};

/// One partition's worth of one file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileSplit {
    /// Path below the watched directory.
    pub path: String,
    /// First byte of the split.
    pub start: u64,
    /// Bytes in the split.
    pub len: u64,
    /// The file's size when it was picked.
    pub size: u64,
}

/// How a file is compressed, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    Gzip,
    Zstd,
}

pub(crate) fn codec(path: &str) -> Option<Codec> {
    if path.ends_with(".gz") {
        Some(Codec::Gzip)
    } else if path.ends_with(".zst") || path.ends_with(".zstd") {
        Some(Codec::Zstd)
    } else {
        None
    }
}

/// The splits of `files`, in order.
pub(crate) fn splits(files: &[Entry], max_split_bytes: u64) -> Vec<FileSplit> {
    let max = max_split_bytes.max(1);
    let mut out = Vec::new();
    for f in files {
        if codec(&f.path).is_some() || f.size <= max {
            out.push(FileSplit {
                path: f.path.clone(),
                start: 0,
                len: f.size,
                size: f.size,
            });
            continue;
        }
        let mut start = 0;
        while start < f.size {
            let len = max.min(f.size - start);
            out.push(FileSplit {
                path: f.path.clone(),
                start,
                len,
                size: f.size,
            });
            start += len;
        }
    }
    out
}

/// What reading a split gave: its lines, and the lines set aside.
#[derive(Debug, Default)]
pub(crate) struct SplitLines {
    pub(crate) lines: Vec<String>,
    pub(crate) malformed: Vec<Malformed>,
}

/// Reads the lines of `split` from `location`; lines over `max_line_bytes` or not UTF-8 are
/// set aside as malformed (with their file and byte offset).
/// Reads `splits` with up to `parallel` reads in flight (threads of this worker sharing
/// `location`, the calling one included); the results in the order of `splits`.
pub(crate) fn read_splits(
    location: &Location,
    splits: &[&FileSplit],
    max_line_bytes: usize,
    parallel: usize,
) -> Vec<Result<SplitLines>> {
    if splits.len() <= 1 || parallel <= 1 {
        return splits
            .iter()
            .map(|s| read_split(location, s, max_line_bytes))
            .collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<SplitLines>>>> =
        splits.iter().map(|_| Default::default()).collect();
    let work = || {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let Some(split) = splits.get(i) else {
                break;
            };
            let got = read_split(location, split, max_line_bytes);
            *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(got);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..parallel.min(splits.len()) {
            // A thread that cannot start leaves its share to the others.
            let _ = std::thread::Builder::new()
                .name("sluice-file-read".into())
                .spawn_scoped(scope, work);
        }
        work();
    });
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .unwrap_or_else(|| Ok(SplitLines::default()))
        })
        .collect()
}

pub(crate) fn read_split(
    location: &Location,
    split: &FileSplit,
    max_line_bytes: usize,
) -> Result<SplitLines> {
    let mut out = SplitLines::default();
    if split.len == 0 && split.start == 0 && split.size == 0 {
        return Ok(out);
    }
    if let Some(c) = codec(&split.path) {
        let raw = location.read_all(&split.path)?;
        let data = match decompress(c, &raw) {
            Ok(d) => d,
            Err(e) => {
                out.malformed.push(Malformed {
                    source: format!("file {}", location.url()),
                    position: split.path.clone(),
                    reason: format!("cannot decompress: {e}"),
                    bytes: raw.into_iter().take(256).collect(),
                });
                return Ok(out);
            }
        };
        lines_of(
            &data,
            0,
            0,
            u64::MAX,
            true,
            location.url(),
            &split.path,
            max_line_bytes,
            &mut out,
        );
        return Ok(out);
    }
    let end = split.start + split.len;
    // Read the split and as much past its end as the line starting at or before the end
    // needs (more each time that line is longer).
    let mut extra: u64 = 64 * 1024;
    loop {
        let until = (end + extra).min(split.size);
        let data = location.read(&split.path, split.start..until)?;
        let complete = until >= split.size
            || data[(end - split.start) as usize..].contains(&b'\n')
            || split.len == 0;
        if complete {
            let at_eof = until >= split.size;
            lines_of(
                &data,
                split.start,
                if split.start == 0 { 0 } else { 1 },
                end,
                at_eof,
                location.url(),
                &split.path,
                max_line_bytes,
                &mut out,
            );
            return Ok(out);
        }
        extra *= 4;
    }
}

fn decompress(codec: Codec, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    match codec {
        Codec::Gzip => {
            flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut out)?;
        }
        Codec::Zstd => {
            zstd::stream::read::Decoder::new(raw)?.read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// The lines of `data` (which starts at byte `base` of the file) that start at or before
/// `end`; with `skip_first`, the bytes up to and including the first `\n` are another split's.
#[allow(clippy::too_many_arguments)]
fn lines_of(
    data: &[u8],
    base: u64,
    skip_first: u8,
    end: u64,
    at_eof: bool,
    url: &str,
    path: &str,
    max_line_bytes: usize,
    out: &mut SplitLines,
) {
    let mut pos = 0usize;
    if skip_first == 1 {
        match data.iter().position(|b| *b == b'\n') {
            Some(nl) => pos = nl + 1,
            None => return,
        }
    }
    while pos < data.len() && base + pos as u64 <= end {
        let (line, next) = match data[pos..].iter().position(|b| *b == b'\n') {
            Some(nl) => (&data[pos..pos + nl], pos + nl + 1),
            None if at_eof => (&data[pos..], data.len()),
            None => break,
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let bad = |reason: String| Malformed {
            source: format!("file {url}"),
            position: format!("{path} byte {}", base + pos as u64),
            reason,
            bytes: line.iter().copied().take(256).collect(),
        };
        if line.len() > max_line_bytes {
            out.malformed.push(bad(format!(
                "line of {} bytes, longer than the limit of {max_line_bytes}",
                line.len()
            )));
        } else {
            match std::str::from_utf8(line) {
                Ok(s) => out.lines.push(s.to_owned()),
                Err(e) => out.malformed.push(bad(format!("not UTF-8: {e}"))),
            }
        }
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_all_splits(text: &[u8], max_split: u64) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f.txt"), text).unwrap();
        let l = Location::open(dir.path().to_str().unwrap()).unwrap();
        let entry = Entry {
            path: "f.txt".into(),
            size: text.len() as u64,
            modified_ms: 0,
            tag: None,
        };
        splits(&[entry], max_split)
            .iter()
            .flat_map(|s| read_split(&l, s, 1 << 20).unwrap().lines)
            .collect()
    }

    #[test]
    fn concurrent_reads_give_the_splits_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        for f in 0..40 {
            let text: String = (0..50).map(|i| format!("file {f} line {i}\n")).collect();
            std::fs::write(dir.path().join(format!("f{f:02}.txt")), &text).unwrap();
            entries.push(Entry {
                path: format!("f{f:02}.txt"),
                size: text.len() as u64,
                modified_ms: 0,
                tag: None,
            });
        }
        let l = Location::open(dir.path().to_str().unwrap()).unwrap();
        let all = splits(&entries, 100);
        let refs: Vec<&FileSplit> = all.iter().collect();
        let lines = |parallel| -> Vec<String> {
            read_splits(&l, &refs, 1 << 20, parallel)
                .into_iter()
                .flat_map(|r| r.unwrap().lines)
                .collect()
        };
        let expected: Vec<String> = (0..40)
            .flat_map(|f| (0..50).map(move |i| format!("file {f} line {i}")))
            .collect();
        assert_eq!(lines(1), expected);
        assert_eq!(lines(8), expected);
    }

    proptest! {
        /// However a file is cut, its splits' lines are its lines, each once, in order (the
        /// model: split at `\n`, no empty piece after a last `\n`, one trailing `\r` off
        /// each, as the socket receiver frames lines).
        #[test]
        fn splits_read_every_line_once(lines in proptest::collection::vec("[a-z\r]{0,12}", 0..30), max_split in 1u64..40, last_newline: bool) {
            let mut text = lines.join("\n");
            if last_newline && !text.is_empty() { text.push('\n'); }
            let mut pieces: Vec<&str> = text.split('\n').collect();
            if pieces.last() == Some(&"") { pieces.pop(); }
            let expected: Vec<String> = pieces.iter().map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned()).collect();
            prop_assert_eq!(read_all_splits(text.as_bytes(), max_split), expected);
        }
    }

    #[test]
    fn compressed_files_are_one_split_and_read_whole() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"a b\nc\n").unwrap();
        let gz = gz.finish().unwrap();
        std::fs::write(dir.path().join("x.gz"), &gz).unwrap();
        std::fs::write(
            dir.path().join("y.zst"),
            zstd::encode_all(&b"d\ne"[..], 1).unwrap(),
        )
        .unwrap();
        let l = Location::open(dir.path().to_str().unwrap()).unwrap();
        let entries = l.list(true).unwrap();
        let s = splits(&entries, 2);
        assert_eq!(s.len(), 2);
        let lines: Vec<String> = s
            .iter()
            .flat_map(|s| read_split(&l, s, 100).unwrap().lines)
            .collect();
        assert_eq!(lines, ["a b", "c", "d", "e"]);
    }

    #[test]
    fn bad_lines_are_set_aside_with_their_offset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("f"),
            b"ok\n\xff\xfe\nthis one is too long\nfine",
        )
        .unwrap();
        let l = Location::open(dir.path().to_str().unwrap()).unwrap();
        let s = splits(&l.list(true).unwrap(), 1 << 20);
        let got = read_split(&l, &s[0], 10).unwrap();
        assert_eq!(got.lines, ["ok", "fine"]);
        assert_eq!(got.malformed.len(), 2);
        assert_eq!(got.malformed[0].position, "f byte 3");
    }
}
