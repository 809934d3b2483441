//! Words of a line without a heap allocation per word: the `flatMap(_.split(...))` of every
//! word count.
//!
//! [`words`] takes a line by value (a `String` from a receiver, a Kafka payload, a line of a
//! file) and yields its whitespace-separated words as [`CompactString`]s, which keep up to 24
//! bytes inline: a word count's words cost no allocation, and a `flat_map` moves them straight
//! into its output (no `Vec` per line in between).
//!
//! Invariant: the words are exactly those of [`str::split_whitespace`] (Unicode's
//! `White_Space`, so `U+3000 IDEOGRAPHIC SPACE` in Chinese text separates words too), in order.
//! ASCII bytes, the common case, are classified with one comparison each; only a byte ≥ 0x80
//! decodes a `char`. The module's tests compare the two on arbitrary strings.

use compact_str::CompactString;

/// The whitespace-separated words of `text`, owned, as [`str::split_whitespace`] gives them.
///
/// # Examples
///
/// ```
/// let words: Vec<_> = sluice::text::words("to be\u{3000}or  not".to_owned()).collect();
/// assert_eq!(words, ["to", "be", "or", "not"]);
/// ```
pub fn words<S: AsRef<str>>(text: S) -> Words<S> {
    Words { text, at: 0 }
}

/// The iterator of [`words`]: owns its text and a position in it (always on a `char` boundary).
#[derive(Debug, Clone)]
pub struct Words<S> {
    text: S,
    at: usize,
}

/// Whether the `char` at byte `i` of `text` (a boundary) is white space, and its length.
#[inline(always)]
fn space_at(text: &str, i: usize) -> (bool, usize) {
    let b = text.as_bytes()[i];
    if b < 0x80 {
        // `char::is_whitespace` of ASCII: \t \n \x0B \x0C \r and space.
        (matches!(b, b'\t'..=b'\r' | b' '), 1)
    } else {
        match text[i..].chars().next() {
            Some(c) => (c.is_whitespace(), c.len_utf8()),
            None => (false, 1),
        }
    }
}

impl<S: AsRef<str>> Iterator for Words<S> {
    type Item = CompactString;

    #[inline]
    fn next(&mut self) -> Option<CompactString> {
        let text = self.text.as_ref();
        let end = text.len();
        let mut i = self.at;
        loop {
            if i >= end {
                self.at = end;
                return None;
            }
            let (space, len) = space_at(text, i);
            if !space {
                break;
            }
            i += len;
        }
        let start = i;
        while i < end {
            let (space, len) = space_at(text, i);
            if space {
                break;
            }
            i += len;
        }
        self.at = i;
        Some(CompactString::from(&text[start..i]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // At most one word per two bytes left (a byte and a separator), and one more.
        let left = self.text.as_ref().len().saturating_sub(self.at);
        (0, Some(left.div_ceil(2)))
    }
}

impl<S: AsRef<str>> std::iter::FusedIterator for Words<S> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(text: &str) -> Vec<CompactString> {
        text.split_whitespace().map(CompactString::from).collect()
    }

    #[test]
    fn words_are_split_whitespaces() {
        for text in [
            "",
            " ",
            "a",
            " a ",
            "hello world",
            "\tmany \r\n kinds\x0bof\x0cspace ",
            "中文\u{3000}单词\u{a0}nbsp\u{85}nel",
            "a\u{2028}b\u{200b}c", // line separator splits, zero-width space does not
            "a somewhat longer word than twenty-four bytes",
        ] {
            assert_eq!(words(text).collect::<Vec<_>>(), naive(text), "{text:?}");
        }
    }

    proptest! {
        #[test]
        fn words_match_split_whitespace_on_any_text(text in "(\\PC|\\s|\u{3000}|\u{85}){0,64}") {
            prop_assert_eq!(words(text.clone()).collect::<Vec<_>>(), naive(&text));
        }

        #[test]
        fn words_match_split_whitespace_on_any_string(text in any::<String>()) {
            prop_assert_eq!(words(text.as_str()).collect::<Vec<_>>(), naive(&text));
        }
    }
}
