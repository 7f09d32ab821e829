//! Admission of a planned batch: victims (a prefix of the eviction order) leave, arrivals
//! take their slots and then new ones. In four steps: slot assignment, the order index (one
//! descent per batch, or one merge when the batch is large against the residents), the
//! per-slot values with the weight and staleness trees, and the weight reference.

use std::ops::Range;

use super::order::{Entry, Removed};
use super::{bulk, rank_key, sort, Candidate, Priorities};
use crate::prefetch::{self, prefetch};

/// A new entry that ends resident: its id and score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Arrival {
    pub(crate) id: u64,
    pub(crate) score: f64,
}

impl Priorities {
    /// Takes out `victims` (a prefix of [`Priorities::eviction_order`]) and places `arrivals`
    /// (ascending ids), last sampled at `step`: the first ones in the victims' slots, the
    /// others in new slots at the end. Returns the slot of each arrival.
    pub(crate) fn admit(
        &mut self,
        victims: &[Candidate],
        arrivals: &[Arrival],
        step: u64,
    ) -> Vec<u32> {
        assert!(arrivals.len() >= victims.len());
        if let Some(top) = arrivals.iter().map(|a| a.score).reduce(f64::max) {
            self.make_weight_room(top);
        }
        let slots = assign_slots(victims, arrivals.len(), self.len());
        self.reserve(self.len() + arrivals.len() - victims.len());
        self.reorder(victims, arrivals, &slots);
        self.write_slots(victims.len(), arrivals, &slots, step);
        self.recentre_weights();
        slots
    }

    /// The order index without the victims and with the arrivals.
    fn reorder(&mut self, victims: &[Candidate], arrivals: &[Arrival], slots: &[u32]) {
        let new = ranked(arrivals, slots);
        let gone = rank_ranges(victims.iter().map(|v| v.rank));
        if bulk(victims.len() + new.len(), self.len()) {
            self.order = self.order.rebuilt(Removed::Ranks(&gone), &new);
        } else {
            // Highest ranks first, so that the lower ranges keep their ranks.
            for r in gone.iter().rev() {
                self.order.remove_range(r.start, r.end);
            }
            self.order.insert_sorted(&new);
        }
    }

    /// Score and last step of each arrival's slot, and the trees that follow them; the first
    /// `reused` slots held victims.
    fn write_slots(&mut self, reused: usize, arrivals: &[Arrival], slots: &[u32], step: u64) {
        let n1 = self.len() + arrivals.len() - reused;
        let more = n1 - self.len();
        crate::huge::reserve(&mut self.scores, more);
        crate::huge::reserve(&mut self.last, more);
        self.scores.resize(n1, 0.0);
        self.last.resize(n1, 0);
        let (scores, last) = (self.scores.as_ptr(), self.last.as_ptr());
        let hint = |&s: &u32| {
            prefetch(prefetch::at(last, s as usize));
            prefetch(prefetch::at(scores, s as usize));
        };
        for (i, &slot) in prefetch::ahead(slots, prefetch::AHEAD, hint).enumerate() {
            let s = slot as usize;
            let old = if i < reused { self.last[s] } else { 0 };
            self.scores[s] = arrivals[i].score;
            self.last[s] = step;
            self.stale.update(s, old, step, &self.last);
        }
        if self.weighted() {
            let updates: Vec<(u32, f64)> = arrivals
                .iter()
                .zip(slots)
                .map(|(a, &s)| (s, self.weight(a.score)))
                .collect();
            self.weights.set_many(&updates);
        }
    }
}

/// The slot of each arrival: the victims' slots in eviction order, then new slots from `n`.
fn assign_slots(victims: &[Candidate], arrivals: usize, n: usize) -> Vec<u32> {
    (0..arrivals)
        .map(|i| match victims.get(i) {
            Some(v) => v.slot,
            None => (n + i - victims.len()) as u32,
        })
        .collect()
}

/// Arrivals as order-index entries in rank order. Arrivals come by ascending id, so a stable
/// sort by descending score is rank order.
fn ranked(arrivals: &[Arrival], slots: &[u32]) -> Vec<Entry> {
    let positions: Vec<u32> = (0..arrivals.len() as u32).collect();
    sort::by_score(&positions, |i| -arrivals[i as usize].score)
        .into_iter()
        .map(|i| {
            let a = arrivals[i as usize];
            Entry {
                key: rank_key(a.score, a.id),
                slot: slots[i as usize],
            }
        })
        .collect()
}

/// Distinct ranks as ascending, disjoint ranges. The victims of one batch form at most two:
/// every rank below the run of equal scores the last victim belongs to, and a first part of
/// that run (eviction and rank order both put its smaller ids first).
fn rank_ranges(ranks: impl Iterator<Item = usize>) -> Vec<Range<usize>> {
    let mut sorted: Vec<usize> = ranks.collect();
    sorted.sort_unstable();
    let mut out: Vec<Range<usize>> = Vec::new();
    for r in sorted {
        match out.last_mut() {
            Some(last) if last.end == r => last.end += 1,
            _ => out.push(r..r + 1),
        }
    }
    out
}
