//! Bytes to lines: `\n`-separated UTF-8, a partial line kept between reads; lines that are
//! not UTF-8, too long, or cut by a reset are set aside as malformed.

use crate::dead_letter::Malformed;

/// How much of an over-long line its dead letter keeps.
const KEPT: usize = 256;

/// Splits bytes into lines, keeping a partial line between reads.
pub(crate) struct LineFramer {
    line: Vec<u8>,
    overlong: bool,
    max: usize,
    line_no: u64,
}

/// A line, or a malformed one set aside (boxed: lines are the common case, and moving them
/// should not copy a dead letter's worth of bytes each).
pub(crate) enum Framed {
    Line(String),
    Bad(Box<Malformed>),
}

impl LineFramer {
    pub(crate) fn new(max: usize) -> Self {
        LineFramer {
            line: Vec::new(),
            overlong: false,
            max,
            line_no: 0,
        }
    }

    pub(crate) fn push(
        &mut self,
        mut bytes: &[u8],
        source: &str,
        conn: u64,
        out: &mut Vec<Framed>,
    ) {
        while !bytes.is_empty() {
            let (chunk, rest, ended) = match memchr::memchr(b'\n', bytes) {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            if !self.overlong {
                if self.line.len() + chunk.len() > self.max {
                    // Only the first 256 bytes are kept for the dead letter, also of what an
                    // earlier read already buffered.
                    self.overlong = true;
                    self.line.truncate(KEPT);
                    self.line.shrink_to(KEPT);
                    let room = KEPT - self.line.len();
                    self.line.extend_from_slice(&chunk[..room.min(chunk.len())]);
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            if ended {
                out.push(self.finish(source, conn, None));
            }
            bytes = rest;
        }
    }

    /// Ends the current line; `cut` gives the reason when the line did not end with `\n`.
    pub(crate) fn finish(&mut self, source: &str, conn: u64, cut: Option<&str>) -> Framed {
        self.line_no += 1;
        let mut bytes = std::mem::take(&mut self.line);
        let overlong = std::mem::replace(&mut self.overlong, false);
        let bad = |reason: String, bytes: Vec<u8>, line_no: u64| {
            Framed::Bad(Box::new(Malformed {
                source: source.to_owned(),
                position: format!("connection {conn}, line {line_no}"),
                reason,
                bytes,
            }))
        };
        if overlong {
            return bad(
                format!("line longer than {} bytes (first {KEPT} kept)", self.max),
                bytes,
                self.line_no,
            );
        }
        if let Some(reason) = cut {
            return bad(reason.to_owned(), bytes, self.line_no);
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        match String::from_utf8(bytes) {
            Ok(s) => Framed::Line(s),
            Err(e) => bad(
                format!("not UTF-8 ({})", e.utf8_error()),
                e.into_bytes(),
                self.line_no,
            ),
        }
    }

    pub(crate) fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.overlong
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlong_lines_dead_letter_keeps_256_bytes_even_of_what_was_buffered() {
        let mut f = LineFramer::new(1000);
        let mut out = Vec::new();
        f.push(&[b'x'; 900], "s", 1, &mut out); // buffered, not yet too long
        f.push(&[b'y'; 200], "s", 1, &mut out); // now too long
        f.push(b"zz\nnext\n", "s", 1, &mut out);
        let Some(Framed::Bad(m)) = out.first() else {
            panic!("the long line is set aside");
        };
        assert_eq!(m.bytes, vec![b'x'; 256]);
        assert!(matches!(out.get(1), Some(Framed::Line(l)) if l == "next"));
    }

    fn lines(f: &mut LineFramer, input: &[&[u8]]) -> (Vec<String>, Vec<String>) {
        let mut out = Vec::new();
        for chunk in input {
            f.push(chunk, "s", 1, &mut out);
        }
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for x in out {
            match x {
                Framed::Line(s) => good.push(s),
                Framed::Bad(m) => bad.push(m.reason),
            }
        }
        (good, bad)
    }

    #[test]
    fn lines_split_across_reads() {
        let mut f = LineFramer::new(100);
        let (good, bad) = lines(&mut f, &[b"hel", b"lo\r\nwor", b"ld\n\n"]);
        assert_eq!(good, vec!["hello", "world", ""]);
        assert!(bad.is_empty());
        assert!(!f.has_partial());
    }

    #[test]
    fn bad_lines_are_set_aside_and_the_next_line_survives() {
        let mut f = LineFramer::new(8);
        let (good, bad) = lines(
            &mut f,
            &[b"\xff\xfe\nok\n", b"0123456789abcdef", b"ghij\nafter\n"],
        );
        assert_eq!(good, vec!["ok", "after"]);
        assert_eq!(bad.len(), 2);
        assert!(bad[0].contains("UTF-8"));
        assert!(bad[1].contains("longer than 8"));
    }
}
