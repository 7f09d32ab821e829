//! Residents in eviction order (score ascending, then id ascending), read lazily from the
//! order index, whose rank order is score descending, then id ascending. The two orders are
//! reverses of each other except inside a run of equal scores, where both put the smaller id
//! first: so the index is read backwards from its last rank, and a run of equal scores is
//! listed forwards from its first rank (found by one search, so that a long run is read
//! only as far as entries are taken).

use super::order::{Cursor, Key, OrderIndex};

/// A resident, as listed in eviction order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) score: f64,
    pub(crate) id: u64,
    pub(crate) slot: u32,
    /// Its rank in the order index (0 = highest).
    pub(crate) rank: usize,
}

/// A run of equal scores being listed forwards: the cursor, its rank, and the ranks left.
struct Run<'a> {
    cursor: Cursor<'a>,
    rank: usize,
    left: usize,
}

/// The iterator of [`super::Priorities::eviction_order`].
pub(crate) struct EvictionOrder<'a> {
    order: &'a OrderIndex,
    scores: &'a [f64],
    /// At the highest rank not listed yet, `end - 1`; None once every rank is listed.
    back: Option<Cursor<'a>>,
    end: usize,
    run: Option<Run<'a>>,
}

impl<'a> EvictionOrder<'a> {
    pub(super) fn new(order: &'a OrderIndex, scores: &'a [f64]) -> Self {
        let end = order.len();
        EvictionOrder {
            order,
            scores,
            back: end.checked_sub(1).map(|last| Cursor::at_rank(order, last)),
            end,
            run: None,
        }
    }

    fn candidate(&self, c: &Cursor, rank: usize) -> Candidate {
        let e = c.entry();
        Candidate {
            score: self.scores[e.slot as usize],
            id: e.key.id,
            slot: e.slot,
            rank,
        }
    }

    /// The next entry of the run being listed, if any.
    fn next_in_run(&mut self) -> Option<Candidate> {
        let run = self.run.as_mut()?;
        let (rank, left) = (run.rank, run.left);
        let e = run.cursor.entry();
        if left > 1 {
            run.cursor.advance();
            run.rank += 1;
            run.left -= 1;
        } else {
            self.run = None;
        }
        Some(Candidate {
            score: self.scores[e.slot as usize],
            id: e.key.id,
            slot: e.slot,
            rank,
        })
    }
}

impl Iterator for EvictionOrder<'_> {
    type Item = Candidate;

    fn next(&mut self) -> Option<Candidate> {
        if let Some(c) = self.next_in_run() {
            return Some(c);
        }
        let back = self.back.as_mut()?;
        let last = self.end - 1;
        let score_rank = back.entry().key.score_rank;
        let current = self.candidate(self.back.as_ref()?, last);
        let back = self.back.as_mut()?;
        let moved = back.retreat();
        if moved && back.entry().key.score_rank == score_rank {
            // A run of equal scores: list it forwards from its first rank.
            let start = self.order.rank_lower_bound(&Key { score_rank, id: 0 });
            self.end = start;
            self.back = (start > 0).then(|| Cursor::at_rank(self.order, start - 1));
            self.run = Some(Run {
                cursor: Cursor::at_rank(self.order, start),
                rank: start,
                left: last + 1 - start,
            });
            return self.next_in_run();
        }
        self.end = last;
        if !moved {
            self.back = None;
        }
        Some(current)
    }
}
