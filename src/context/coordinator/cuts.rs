//! The control half of the coordinator: which batch the local workers may cut next, and which
//! batch is the last one once a stop or `max_batches` fixes it. Plain data, no clock and no
//! locks: [`Coordinator`](super::Coordinator) reads its clock, holds the lock and asks.
//!
//! Invariants (each has a unit test below):
//! - the final batch, once fixed, is never before a batch a local worker has cut, so a batch
//!   is cut by every local worker or by none;
//! - a later stop moves the final batch earlier or leaves it, never later (but never before a
//!   batch already cut);
//! - after a stop every batch up to the final one is cut at once, without waiting for its
//!   time; no batch after the final one is ever cut.

/// What a worker may do with the next batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CutDecision {
    /// Cut it now; `last` when no batch will follow it (a stop or `max_batches`).
    Cut {
        /// This is the final batch.
        last: bool,
    },
    /// Its time has not come.
    NotYet,
    /// The job is past its final batch: close the inputs.
    Finished,
}

/// A stop, as the coordinator sees it when it is asked.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stop {
    /// The batch at or after the clock's time now.
    pub(super) due: u64,
    /// The run's first batch (a stop before it cuts nothing).
    pub(super) first: u64,
    pub(super) batch_ms: u64,
    /// Graceful: what was cut and what is due is processed.
    pub(super) graceful: bool,
    /// The job keeps a checkpoint (a graceful stop then cuts one more batch, known to be the
    /// last when it is cut, so stateful operators snapshot it).
    pub(super) checkpointed: bool,
}

/// The batches cut so far and the final one.
#[derive(Debug, Default)]
pub(super) struct Cuts {
    max_cut: Option<u64>,
    final_batch: Option<u64>,
    /// A stop was requested: cut up to the final batch without waiting for the clock.
    hurry: bool,
}

impl Cuts {
    /// The final batch, once fixed.
    pub(super) fn final_batch(&self) -> Option<u64> {
        self.final_batch
    }

    /// From now on, batches up to the final one are cut without waiting for their time.
    pub(super) fn hurry(&mut self) {
        self.hurry = true;
    }

    /// Decides about batch `t`; `due` says whether its time has come by the pacing rule.
    pub(super) fn decide(&mut self, t: u64, due: bool) -> CutDecision {
        if self.final_batch.is_some_and(|f| t > f) {
            CutDecision::Finished
        } else if due || self.hurry {
            self.max_cut = Some(self.max_cut.map_or(t, |m| m.max(t)));
            CutDecision::Cut {
                last: self.final_batch == Some(t),
            }
        } else {
            CutDecision::NotYet
        }
    }

    /// `max_batches`: no batch after `last`.
    pub(super) fn limit(&mut self, last: u64) {
        self.final_batch = Some(self.final_batch.map_or(last, |f| f.min(last)));
    }

    /// A stop: fixes the final batch (see the module's invariants).
    pub(super) fn stop(&mut self, stop: Stop) {
        let candidate = self.max_cut.map_or(stop.due, |m| m.max(stop.due));
        // Never before the first batch minus one interval: a stop before start cuts nothing.
        let candidate = candidate.max(stop.first.saturating_sub(stop.batch_ms));
        // A batch already cut may have been processed before the stop was asked: with a
        // checkpoint, a graceful stop cuts one more, known to be the last when it is cut.
        let candidate = match self.max_cut {
            Some(m) if stop.graceful && stop.checkpointed => candidate.max(m + stop.batch_ms),
            _ => candidate,
        };
        let floor = self.max_cut.unwrap_or(0);
        self.final_batch = Some(
            self.final_batch
                .map_or(candidate, |f| f.min(candidate).max(floor)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1000;

    fn stop(due: u64, graceful: bool, checkpointed: bool) -> Stop {
        Stop {
            due,
            first: MS,
            batch_ms: MS,
            graceful,
            checkpointed,
        }
    }

    #[test]
    fn a_batch_is_cut_at_its_time_and_not_before() {
        let mut c = Cuts::default();
        assert_eq!(c.decide(MS, false), CutDecision::NotYet);
        assert_eq!(c.decide(MS, true), CutDecision::Cut { last: false });
    }

    #[test]
    fn the_final_batch_is_never_before_a_batch_already_cut() {
        let mut c = Cuts::default();
        for t in 1..=5 {
            assert_eq!(c.decide(t * MS, true), CutDecision::Cut { last: false });
        }
        // The clock reads earlier than the cuts (a worker ran ahead): the stop still keeps 5.
        c.stop(stop(3 * MS, false, false));
        assert_eq!(c.final_batch(), Some(5 * MS));
        // A later, earlier stop cannot take back a batch that was cut.
        c.stop(stop(MS, false, false));
        assert_eq!(c.final_batch(), Some(5 * MS));
        assert_eq!(c.decide(5 * MS, true), CutDecision::Cut { last: true });
        assert_eq!(c.decide(6 * MS, true), CutDecision::Finished);
    }

    #[test]
    fn a_later_stop_never_moves_the_final_batch_later() {
        let mut c = Cuts::default();
        c.decide(MS, true);
        c.stop(stop(3 * MS, true, false));
        assert_eq!(c.final_batch(), Some(3 * MS));
        c.stop(stop(9 * MS, true, false));
        assert_eq!(c.final_batch(), Some(3 * MS));
        let mut limited = Cuts::default();
        limited.limit(4 * MS);
        limited.stop(stop(7 * MS, true, false));
        assert_eq!(limited.final_batch(), Some(4 * MS));
        limited.limit(9 * MS);
        assert_eq!(limited.final_batch(), Some(4 * MS));
    }

    #[test]
    fn after_a_stop_every_batch_to_the_final_one_is_cut_at_once_and_none_after() {
        let mut c = Cuts::default();
        c.decide(MS, true);
        c.stop(stop(4 * MS, true, false));
        c.hurry();
        for t in 2..=3 {
            assert_eq!(c.decide(t * MS, false), CutDecision::Cut { last: false });
        }
        assert_eq!(c.decide(4 * MS, false), CutDecision::Cut { last: true });
        assert_eq!(c.decide(5 * MS, false), CutDecision::Finished);
    }

    #[test]
    fn a_graceful_stop_with_a_checkpoint_cuts_one_more_batch_to_snapshot() {
        let mut with = Cuts::default();
        let mut without = Cuts::default();
        for c in [&mut with, &mut without] {
            c.decide(MS, true);
            c.decide(2 * MS, true);
        }
        with.stop(stop(2 * MS, true, true));
        without.stop(stop(2 * MS, true, false));
        assert_eq!(with.final_batch(), Some(3 * MS));
        assert_eq!(without.final_batch(), Some(2 * MS));
        // An abrupt stop never adds one.
        let mut abrupt = Cuts::default();
        abrupt.decide(MS, true);
        abrupt.stop(stop(MS, false, true));
        assert_eq!(abrupt.final_batch(), Some(MS));
    }

    #[test]
    fn a_stop_before_the_first_batch_cuts_nothing() {
        let mut c = Cuts::default();
        c.stop(Stop {
            due: 0,
            first: 5 * MS,
            batch_ms: MS,
            graceful: true,
            checkpointed: true,
        });
        assert_eq!(c.final_batch(), Some(4 * MS));
        assert_eq!(c.decide(5 * MS, true), CutDecision::Finished);
    }
}
