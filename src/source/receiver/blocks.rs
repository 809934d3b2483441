//! The receiver's buffer, cut into blocks: lines that arrive within one block interval form
//! one block, one partition of the batch that takes them (Spark's `BlockGenerator`).

use std::time::Duration;

use crate::source::BatchOut;

/// Lines received and not yet taken by a batch; `first_seq` numbers `lines[0]` in the
/// write-ahead log.
#[derive(Default)]
pub(crate) struct Buffer {
    pub(crate) lines: Vec<String>,
    pub(crate) first_seq: u64,
    /// Memory the lines hold ([`line_bytes`](super::limits::line_bytes) summed).
    pub(crate) bytes: usize,
    /// Where each block after the first starts in `lines`.
    block_starts: Vec<usize>,
    /// When the current block began (its first line arrived).
    block_opened: Option<std::time::Instant>,
}

impl Buffer {
    /// Appends lines that arrived now: a new block starts when the current one is older than
    /// `block_interval`.
    pub(crate) fn append(&mut self, lines: &mut Vec<String>, block_interval: Duration) {
        let now = std::time::Instant::now();
        match self.block_opened {
            Some(opened) if now.duration_since(opened) < block_interval => {}
            Some(_) if !self.lines.is_empty() => {
                self.block_starts.push(self.lines.len());
                self.block_opened = Some(now);
            }
            _ => self.block_opened = Some(now),
        }
        self.bytes += lines.iter().map(super::limits::line_bytes).sum::<usize>();
        self.lines.append(lines);
    }

    /// After a restart: the lines received before it and in no batch yet, numbered from
    /// `first_seq`; one block.
    pub(crate) fn restore(&mut self, first_seq: u64, lines: Vec<String>) {
        self.first_seq = first_seq;
        self.bytes = lines.iter().map(super::limits::line_bytes).sum();
        self.lines = lines;
    }

    /// Takes every line, cut into blocks (block sizes, in order).
    ///
    /// The buffer starts again with room for as many lines as it hands over: at a steady rate
    /// the next batch's lines then arrive without the vector growing (each growth a copy of
    /// every line so far, into memory the kernel must first zero). Room not filled is address
    /// space, not memory: pages are only backed once written.
    pub(crate) fn take(&mut self) -> (Vec<String>, Vec<u64>) {
        let room = self.lines.len();
        let lines = std::mem::replace(&mut self.lines, Vec::with_capacity(room));
        self.bytes = 0;
        let mut sizes = Vec::with_capacity(self.block_starts.len() + 1);
        let mut at = 0;
        for start in self.block_starts.drain(..) {
            sizes.push((start - at) as u64);
            at = start;
        }
        if lines.len() > at {
            sizes.push((lines.len() - at) as u64);
        }
        self.block_opened = None;
        (lines, sizes)
    }
}

/// Puts a batch's lines into its partitions, one per block, in order.
///
/// Blocks are cut from the back, so every line is moved at most once, and the first block keeps
/// the batch's own vector; each block then becomes its partition as it is, not a copy.
pub(crate) fn into_blocks(mut lines: Vec<String>, sizes: &[u64], out: &mut BatchOut<String>) {
    let mut rest = Vec::new();
    for (i, size) in sizes.iter().enumerate().rev() {
        let at = lines.len().saturating_sub(*size as usize);
        let block = if at == 0 {
            std::mem::take(&mut lines)
        } else {
            lines.split_off(at)
        };
        rest.push((i, block));
    }
    if !lines.is_empty() {
        // Sizes that do not add up (an older plan): whatever is left is a block of its own.
        rest.push((sizes.len(), lines));
    }
    rest.sort_by_key(|(i, _)| *i);
    for (i, block) in rest {
        let records = out.partition(i as u32);
        if records.is_empty() {
            *records = block;
        } else {
            records.extend(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|i| i.to_string()).collect()
    }

    #[test]
    fn a_batch_is_its_blocks_in_order() {
        let mut buffer = Buffer::default();
        // Three blocks: a zero interval starts a new block at every append.
        for range in [0..3, 3..4, 4..9] {
            buffer.append(&mut lines(range), Duration::ZERO);
        }
        let (all, sizes) = buffer.take();
        assert_eq!(sizes, vec![3, 1, 5]);
        let mut out = BatchOut::new(0);
        into_blocks(all, &sizes, &mut out);
        let parts: Vec<(u64, Vec<String>)> = out
            .into_parts()
            .into_iter()
            .map(|p| (p.id.index(), p.records))
            .collect();
        assert_eq!(
            parts,
            vec![(0, lines(0..3)), (1, lines(3..4)), (2, lines(4..9))]
        );
    }

    #[test]
    fn blocks_are_moved_not_copied() {
        let all = lines(0..10);
        let first_line = all.as_ptr();
        let mut out = BatchOut::new(0);
        into_blocks(all, &[4, 6], &mut out);
        let parts = out.into_parts();
        assert_eq!(parts[0].records, lines(0..4));
        assert_eq!(parts[1].records, lines(4..10));
        // The first block is the batch's vector itself, not a copy of it.
        assert_eq!(parts[0].records.as_ptr(), first_line);
    }

    #[test]
    fn the_buffer_keeps_room_for_a_batch_like_the_last() {
        let mut buffer = Buffer::default();
        buffer.append(&mut lines(0..1000), Duration::from_secs(1));
        let (taken, _) = buffer.take();
        assert_eq!(taken.len(), 1000);
        assert!(buffer.lines.capacity() >= 1000);
        // After a batch with no lines the room goes back to nothing.
        buffer.take();
        assert_eq!(buffer.lines.capacity(), 0);
    }

    #[test]
    fn sizes_that_do_not_add_up_leave_the_rest_as_a_block_of_its_own() {
        let mut out = BatchOut::new(0);
        into_blocks(lines(0..5), &[2], &mut out);
        let sizes: Vec<usize> = out.into_parts().iter().map(|p| p.records.len()).collect();
        assert_eq!(sizes, vec![2, 3]);
    }
}
