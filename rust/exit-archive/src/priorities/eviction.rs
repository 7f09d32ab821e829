//! Residents in eviction order (score ascending, then id ascending), read lazily from the
//! order index, whose rank order is score descending, then id ascending. The two orders are
//! reverses of each other except inside a run of equal scores, where both put the smaller id
//! first: so the runs are taken from the last rank backwards, each listed forwards.

use super::order::{Key, OrderIndex, Position};

/// A resident, as listed in eviction order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) score: f64,
    pub(crate) id: u64,
    pub(crate) slot: u32,
    /// Its rank in the order index (0 = highest).
    pub(crate) rank: usize,
}

/// A run of equal scores being listed: the next position, its rank, and the ranks left.
#[derive(Clone, Copy)]
struct Run {
    pos: Position,
    rank: usize,
    left: usize,
}

/// The iterator of [`super::Priorities::eviction_order`].
pub(crate) struct EvictionOrder<'a> {
    order: &'a OrderIndex,
    scores: &'a [f64],
    /// Ranks below this have not been listed yet.
    end: usize,
    run: Option<Run>,
}

impl<'a> EvictionOrder<'a> {
    pub(super) fn new(order: &'a OrderIndex, scores: &'a [f64]) -> Self {
        EvictionOrder {
            order,
            scores,
            end: order.len(),
            run: None,
        }
    }

    fn candidate(&self, pos: Position, rank: usize) -> Candidate {
        let e = self.order.at(pos);
        Candidate {
            score: self.scores[e.slot as usize],
            id: e.key.id,
            slot: e.slot,
            rank,
        }
    }

    /// Starts the run of equal scores that ends just below rank `end`.
    fn start_run(&mut self) -> Option<Run> {
        let last = self.end.checked_sub(1)?;
        let pos = self.order.locate(last);
        let score_rank = self.order.at(pos).key.score_rank;
        // A single entry unless its neighbour below shares its score (the common case).
        let tied = self
            .order
            .prev_position(pos)
            .is_some_and(|p| self.order.at(p).key.score_rank == score_rank);
        let start = if tied {
            self.order.rank_lower_bound(&Key { score_rank, id: 0 })
        } else {
            last
        };
        self.end = start;
        let pos = if tied { self.order.locate(start) } else { pos };
        Some(Run {
            pos,
            rank: start,
            left: last + 1 - start,
        })
    }
}

impl Iterator for EvictionOrder<'_> {
    type Item = Candidate;

    fn next(&mut self) -> Option<Candidate> {
        let run = match self.run {
            Some(run) => run,
            None => self.start_run()?,
        };
        let c = self.candidate(run.pos, run.rank);
        self.run = (run.left > 1).then(|| Run {
            pos: self
                .order
                .next_position(run.pos)
                .expect("the run continues"),
            rank: run.rank + 1,
            left: run.left - 1,
        });
        Some(c)
    }
}
