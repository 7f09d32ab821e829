//! `Priorities`: every structure that decides which resident a draw returns and which one an
//! insertion evicts, kept in step by one type.
//!
//! Residents occupy the dense slots 0..n. Per slot it holds the score and last_step; over the
//! slots it keeps
//! - the order index: keys (score descending, id ascending) → slot, for rank draws and for
//!   the lowest residents (eviction candidates);
//! - the rank table (rank mode), the score-weight tree (proportional and softmax modes);
//! - the staleness tree of last_step sums and maxima.
//!
//! Batches are applied as batches (`admit.rs`, `rescore`): a batch small against n goes
//! through the order index in one descent; a batch large against n rebuilds it by one merge,
//! O(n + batch). Per-slot weight changes recompute each touched tree node once.

mod admit;
mod draw;
mod eviction;
mod order;
mod rank;
mod reference;
mod sort;
mod staleness;
mod weights;

use crate::config::{Config, Prioritization};
use crate::prefetch::{self, prefetch};
pub(crate) use admit::Arrival;
pub(crate) use eviction::{Candidate, EvictionOrder};
use order::{Entry, Key, OrderIndex, Removed};
use rank::RankTable;
pub(crate) use reference::{initial_weight_ref, weight_ref_fits};
use staleness::StalenessTree;
use weights::WeightTree;

/// A batch changing at least 1/BULK_FRACTION of the residents rebuilds the order index by
/// one merge instead of descending once per key.
const BULK_FRACTION: usize = 8;
/// Below this many residents, every batch rebuilds.
const BULK_MIN: usize = 64;

#[cfg(test)]
thread_local! {
    /// Tests force one path or the other to compare them.
    pub(crate) static FORCE_BULK: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Whether a batch of `changes` keys against `n` residents takes the bulk path.
fn bulk(changes: usize, n: usize) -> bool {
    #[cfg(test)]
    if let Some(forced) = FORCE_BULK.with(|f| f.get()) {
        return forced;
    }
    changes * BULK_FRACTION >= n.max(BULK_MIN)
}

/// Monotone map of scores to integers: ascending bits order is ascending score (−0.0 is 0.0).
#[inline]
pub(crate) fn ascending_bits(score: f64) -> u64 {
    let bits = (score + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// Order-index key: ascending key order is descending score, then ascending id (rank order).
#[inline]
fn rank_key(score: f64, id: u64) -> Key {
    Key {
        score_rank: !ascending_bits(score),
        id,
    }
}

#[derive(Clone)]
pub(crate) struct Priorities {
    mode: Prioritization,
    temperature: f64,
    staleness_coef: f64,
    capacity: usize,
    scores: Vec<f64>,
    last: Vec<u64>,
    order: OrderIndex,
    rank: RankTable,
    weights: WeightTree,
    stale: StalenessTree,
    weight_ref: f64,
}

impl Priorities {
    pub(crate) fn new(cfg: &Config) -> Self {
        Priorities {
            mode: cfg.prioritization,
            temperature: cfg.temperature,
            staleness_coef: cfg.staleness_coef,
            capacity: cfg.capacity,
            scores: Vec::new(),
            last: Vec::new(),
            order: OrderIndex::new(),
            rank: RankTable::new(cfg.temperature),
            weights: WeightTree::with_room(1),
            stale: StalenessTree::build(1, &[]),
            weight_ref: initial_weight_ref(cfg.prioritization),
        }
    }

    /// Builds from per-slot scores and last_steps of residents whose ids are `ids`;
    /// `rank_order` lists the slots by rank (score descending, then id ascending).
    pub(crate) fn from_ranked(
        cfg: &Config,
        ids: &[u64],
        scores: Vec<f64>,
        last: Vec<u64>,
        rank_order: &[u32],
        weight_ref: f64,
    ) -> Self {
        let mut p = Priorities::new(cfg);
        let n = ids.len();
        let entries: Vec<Entry> = rank_order
            .iter()
            .map(|&s| Entry {
                key: rank_key(scores[s as usize], ids[s as usize]),
                slot: s,
            })
            .collect();
        p.order = OrderIndex::from_sorted(&entries);
        p.scores = scores;
        p.last = last;
        p.weight_ref = weight_ref;
        p.rank.grow(n);
        p.rebuild_trees(n);
        p
    }

    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }

    pub(crate) fn score(&self, slot: usize) -> f64 {
        self.scores[slot]
    }

    pub(crate) fn last_step(&self, slot: usize) -> u64 {
        self.last[slot]
    }

    pub(crate) fn scores(&self) -> &[f64] {
        &self.scores
    }

    pub(crate) fn last_steps(&self) -> &[u64] {
        &self.last
    }

    /// Slots by rank: score descending, then id ascending.
    pub(crate) fn rank_order(&self) -> Vec<u32> {
        self.order.entries().into_iter().map(|e| e.slot).collect()
    }

    pub(crate) fn weight_ref(&self) -> f64 {
        self.weight_ref
    }

    /// The largest last_step among residents (0 when empty).
    pub(crate) fn max_last_step(&self) -> u64 {
        self.stale.max()
    }

    /// The highest resident score.
    pub(crate) fn top_score(&self) -> Option<f64> {
        (self.len() > 0).then(|| self.scores[self.order.select(0).slot as usize])
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        (self.scores.capacity() + self.last.capacity()) * 8
            + self.order.memory_bytes()
            + self.rank.memory_bytes()
            + self.weights.memory_bytes()
            + self.stale.memory_bytes()
    }

    fn weighted(&self) -> bool {
        self.mode != Prioritization::Rank
    }

    /// Rebuilds the weight and staleness trees from the per-slot values, with room for
    /// `room` slots.
    fn rebuild_trees(&mut self, room: usize) {
        let room = room.max(self.len());
        self.stale = StalenessTree::build(room, &self.last);
        if self.weighted() {
            let w: Vec<f64> = self.scores.iter().map(|&s| self.weight(s)).collect();
            self.weights.rebuild(room, w.into_iter());
        }
    }

    /// Makes room for `n` residents: the trees double up to the capacity.
    fn reserve(&mut self, n: usize) {
        self.rank.grow(n);
        if n > self.stale.room() || (self.weighted() && n > self.weights.room()) {
            let room = n.max(2 * self.stale.room()).min(self.capacity).max(n);
            self.rebuild_trees(room);
        }
    }

    /// The residents in eviction order (score ascending, then id ascending), lazily.
    pub(crate) fn eviction_order(&self) -> EvictionOrder<'_> {
        EvictionOrder::new(&self.order, &self.scores)
    }

    /// Sets new scores: `changes` holds (slot, id, score) with distinct slots.
    pub(crate) fn rescore(&mut self, changes: &[(u32, u64, f64)]) {
        if let Some(top) = changes.iter().map(|c| c.2).reduce(f64::max) {
            self.make_weight_room(top);
        }
        let mut new: Vec<Entry> = changes
            .iter()
            .map(|&(slot, id, score)| Entry {
                key: rank_key(score, id),
                slot,
            })
            .collect();
        new.sort_unstable_by_key(|e| e.key);
        let scores = self.scores.as_ptr();
        let hint = |c: &(u32, u64, f64)| prefetch(prefetch::at(scores, c.0 as usize));
        let mut gone: Vec<Key> = prefetch::ahead(changes, prefetch::AHEAD, hint)
            .map(|&(slot, id, _)| rank_key(self.scores[slot as usize], id))
            .collect();
        gone.sort_unstable();
        if bulk(2 * changes.len(), self.len()) {
            self.order = self.order.rebuilt(Removed::Keys(&gone), &new);
        } else {
            self.order.remove_sorted(&gone);
            self.order.insert_sorted(&new);
        }
        for &(slot, _, score) in changes {
            self.scores[slot as usize] = score;
        }
        if self.weighted() {
            let updates: Vec<(u32, f64)> = changes
                .iter()
                .map(|&(slot, _, score)| (slot, self.weight(score)))
                .collect();
            self.weights.set_many(&updates);
        }
        self.recentre_weights();
    }

    /// Marks drawn slots as sampled at `step`.
    pub(crate) fn touch(&mut self, slots: &[u32], step: u64) {
        let last = self.last.as_ptr();
        for &slot in prefetch::ahead(slots, prefetch::AHEAD, |&s| {
            prefetch(prefetch::at(last, s as usize))
        }) {
            let s = slot as usize;
            let old = self.last[s];
            if old != step {
                self.last[s] = step;
                self.stale.update(s, old, step, &self.last);
            }
        }
    }

    /// Takes out the resident at `slot` (id `id`); the last slot's resident (id `last_id`)
    /// moves into its place so slots stay dense.
    pub(crate) fn remove(&mut self, slot: usize, id: u64, last_id: u64) {
        let last = self.len() - 1;
        self.order.remove_sorted(&[rank_key(self.scores[slot], id)]);
        let (hole_old, moved) = (self.last[slot], self.last[last]);
        if slot != last {
            self.order
                .set_slot(&rank_key(self.scores[last], last_id), slot as u32);
            self.scores[slot] = self.scores[last];
            self.last[slot] = moved;
        }
        self.scores.pop();
        self.last.pop();
        if slot != last {
            self.stale.update(slot, hole_old, moved, &self.last);
        }
        self.stale.update(last, moved, 0, &self.last);
        if self.weighted() {
            if slot != last {
                let w = self.weights.get(last);
                self.weights.set(slot, w);
            }
            self.weights.set(last, 0.0);
        }
        self.recentre_weights();
    }

    /// Asserts that every structure agrees with the per-slot values; `ids[slot]` is the id at
    /// each slot.
    #[cfg(any(test, feature = "check-invariants"))]
    pub(crate) fn check(&self, ids: &[u64]) {
        let n = self.len();
        assert_eq!((ids.len(), self.last.len(), self.order.len()), (n, n, n));
        self.order.check();
        let mut expected: Vec<Entry> = (0..n)
            .map(|s| Entry {
                key: rank_key(self.scores[s], ids[s]),
                slot: s as u32,
            })
            .collect();
        expected.sort_unstable_by_key(|e| e.key);
        assert_eq!(self.order.entries(), expected, "order index out of step");
        let stale = StalenessTree::build(self.stale.room(), &self.last);
        assert_eq!(
            (self.stale.sum(), self.stale.max()),
            (stale.sum(), stale.max())
        );
        if self.weighted() {
            let mut fresh = WeightTree::with_room(1);
            fresh.rebuild(
                self.weights.room(),
                self.scores.iter().map(|&s| self.weight(s)),
            );
            for s in 0..n {
                assert_eq!(
                    self.weights.get(s),
                    fresh.get(s),
                    "stale weight at slot {s}"
                );
            }
            assert_eq!(self.weights.total(), fresh.total(), "weight sums drifted");
            if let Some(top) = self.top_score() {
                assert!(
                    weight_ref_fits(self.mode, self.temperature, self.weight_ref, top),
                    "weight reference"
                );
            }
        }
    }
}
