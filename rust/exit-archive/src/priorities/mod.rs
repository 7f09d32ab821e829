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
//! Batches are applied as batches: sorted key runs go through the order index in one descent,
//! per-slot weight changes recompute each touched tree node once.

mod order;
mod rank;
mod sort;
mod staleness;
mod weights;

use crate::config::{Config, Prioritization};
use crate::prefetch::prefetch;
use crate::rng::Rng;
use order::{Key, OrderIndex, Position};
use rank::RankTable;
pub(crate) use sort::by_score as sort_by_score;
use staleness::StalenessTree;
use weights::WeightTree;

/// Score weights are taken relative to a reference score near the highest one:
/// softmax `exp((score − weight_ref) / T)`, proportional `(score / weight_ref)^(1/T)`; both are
/// the formula's `h` times one common factor, which `P_S = h / Σh` cancels. The reference
/// follows the highest resident score with this much slack (in log-weight units) on either
/// side, so the largest weight stays within e^±WEIGHT_SLACK: sums cannot overflow, the top
/// weight never underflows, and moving the reference (an O(n) reweighting) is rare.
pub(crate) const WEIGHT_SLACK: f64 = 256.0;

/// The reference a new archive starts with: weights are then the plain formula's h.
pub(crate) fn initial_weight_ref(mode: Prioritization) -> f64 {
    match mode {
        Prioritization::Proportional => 1.0,
        _ => 0.0,
    }
}

fn log_weight(mode: Prioritization, temperature: f64, weight_ref: f64, score: f64) -> f64 {
    match mode {
        Prioritization::Proportional if score == 0.0 => 0.0,
        Prioritization::Proportional => (score.ln() - weight_ref.ln()) / temperature,
        _ => (score - weight_ref) / temperature,
    }
}

/// Whether `weight_ref` is a valid reference for a highest score `top`: finite (positive in
/// proportional mode) and within the slack window of it.
pub(crate) fn weight_ref_fits(
    mode: Prioritization,
    temperature: f64,
    weight_ref: f64,
    top: f64,
) -> bool {
    let valid = match mode {
        Prioritization::Proportional => weight_ref > 0.0 && weight_ref.is_finite(),
        _ => weight_ref.is_finite(),
    };
    valid
        && (-WEIGHT_SLACK..=WEIGHT_SLACK).contains(&log_weight(mode, temperature, weight_ref, top))
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
    (!ascending_bits(score), id)
}

/// A resident, as listed in eviction order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Candidate {
    pub score: f64,
    pub id: u64,
    pub slot: u32,
}

/// Sorts keys and returns them with their payloads in ascending key order.
fn sorted<T: Copy>(mut entries: Vec<(Key, T)>) -> Vec<(Key, T)> {
    entries.sort_unstable_by_key(|e| e.0);
    entries
}

/// Positions of entries listed in eviction order (score ascending, then id ascending),
/// reordered into ascending rank-key order: the runs of equal scores in reverse, each run
/// kept as it is.
fn rank_order_of_eviction_order(len: usize, score: impl Fn(usize) -> f64) -> Vec<usize> {
    let mut out = Vec::with_capacity(len);
    let mut end = len;
    while end > 0 {
        let hi = ascending_bits(score(end - 1));
        let mut start = end - 1;
        while start > 0 && ascending_bits(score(start - 1)) == hi {
            start -= 1;
        }
        out.extend(start..end);
        end = start;
    }
    out
}

/// Residents in eviction order (score ascending, then id ascending), produced lazily: the
/// order index is walked back from its last rank, a run of equal scores at a time (a run is
/// reversed so that smaller ids come first); a run longer than `RUN_LIMIT` is walked forward
/// from its start instead, so only the entries taken are read.
pub(crate) struct Lowest<'a> {
    order: &'a mut OrderIndex,
    scores: &'a [f64],
    /// Where the backward walk continues.
    back: Option<Position>,
    /// The current run, smallest id last.
    pending: Vec<Candidate>,
    /// A long run being walked forward: position, entries left, and the rank where the
    /// backward walk resumes after it.
    forward: Option<(Position, usize, Option<usize>)>,
}

const RUN_LIMIT: usize = 64;

impl Lowest<'_> {
    fn candidate(&self, pos: Position) -> Candidate {
        let (key, slot) = self.order.at(pos);
        Candidate {
            score: self.scores[slot as usize],
            id: key.1,
            slot,
        }
    }
}

impl Iterator for Lowest<'_> {
    type Item = Candidate;

    fn next(&mut self) -> Option<Candidate> {
        if let Some(c) = self.pending.pop() {
            return Some(c);
        }
        if let Some((pos, left, resume)) = self.forward.take() {
            let c = self.candidate(pos);
            if left > 1 {
                let next = self.order.next_position(pos).expect("the run continues");
                self.forward = Some((next, left - 1, resume));
            } else {
                self.back = resume.map(|r| self.order.locate(r));
            }
            return Some(c);
        }
        let start = self.back?;
        let hi = self.order.at(start).0 .0;
        let mut pos = Some(start);
        while let Some(p) = pos {
            if self.order.at(p).0 .0 != hi {
                break;
            }
            if self.pending.len() == RUN_LIMIT {
                // A long run: walk it forward from its first entry instead.
                self.pending.clear();
                let first = self.order.rank_lower_bound(&(hi, 0));
                let end = match hi.checked_add(1) {
                    Some(next) => self.order.rank_lower_bound(&(next, 0)),
                    None => self.order.len(),
                };
                let resume = first.checked_sub(1);
                self.forward = Some((self.order.locate(first), end - first, resume));
                return self.next();
            }
            let c = self.candidate(p);
            self.pending.push(c);
            pos = self.order.prev_position(p);
        }
        self.back = pos;
        self.pending.pop()
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
        let entries: Vec<(Key, u32)> = rank_order
            .iter()
            .map(|&s| (rank_key(scores[s as usize], ids[s as usize]), s))
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
        self.order.entries().into_iter().map(|e| e.1).collect()
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
        (self.len() > 0).then(|| self.scores[self.order.select_ref(0).1 as usize])
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

    #[inline]
    fn weight(&self, score: f64) -> f64 {
        let t = self.temperature;
        match self.mode {
            Prioritization::Softmax => ((score - self.weight_ref) / t).exp(),
            _ if t == 1.0 => score / self.weight_ref,
            _ => (score / self.weight_ref).powf(1.0 / t),
        }
    }

    /// Log of the weight of `score` relative to the reference: where `score` lies in the
    /// slack window. Zero for a proportional score of 0 (weight 0 whatever the reference).
    fn log_weight(&self, score: f64) -> f64 {
        log_weight(self.mode, self.temperature, self.weight_ref, score)
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

    /// Moves the reference up to `incoming` (the largest score about to be weighted) when its
    /// weight could overflow.
    fn make_weight_room(&mut self, incoming: f64) {
        if self.weighted() && self.log_weight(incoming) > WEIGHT_SLACK {
            self.weight_ref = incoming;
            self.rebuild_trees(self.weights.room());
        }
    }

    /// Re-centres the reference on the highest score when that left the window.
    fn recentre_weights(&mut self) {
        if !self.weighted() {
            return;
        }
        if let Some(top) = self.top_score() {
            if !weight_ref_fits(self.mode, self.temperature, self.weight_ref, top) {
                self.weight_ref = top;
                self.rebuild_trees(self.weights.room());
            }
        }
    }

    /// The residents in eviction order (score ascending, then id ascending), lazily.
    pub(crate) fn lowest(&mut self) -> Lowest<'_> {
        let back = (self.len() > 0).then(|| self.order.locate(self.len() - 1));
        Lowest {
            order: &mut self.order,
            scores: &self.scores,
            back,
            pending: Vec::new(),
            forward: None,
        }
    }

    /// Takes out `victims` (a prefix of [`Priorities::lowest`]) and places `arrivals` (id,
    /// score), last sampled at `step`: the first ones in the victims' slots, the others in new
    /// slots at the end. Returns the slot of each arrival.
    pub(crate) fn admit(
        &mut self,
        victims: &[Candidate],
        arrivals: &[(u64, f64)],
        step: u64,
    ) -> Vec<u32> {
        assert!(arrivals.len() >= victims.len());
        if let Some(top) = arrivals.iter().map(|a| a.1).reduce(f64::max) {
            self.make_weight_room(top);
        }
        let n0 = self.len();
        let n1 = n0 + arrivals.len() - victims.len();
        self.reserve(n1);
        let slots: Vec<u32> = (0..arrivals.len())
            .map(|i| match victims.get(i) {
                Some(v) => v.slot,
                None => (n0 + i - victims.len()) as u32,
            })
            .collect();
        let gone: Vec<Key> = rank_order_of_eviction_order(victims.len(), |i| victims[i].score)
            .into_iter()
            .map(|i| rank_key(victims[i].score, victims[i].id))
            .collect();
        // Arrivals come by ascending id: a stable sort by score gives eviction order.
        let positions: Vec<u32> = (0..arrivals.len() as u32).collect();
        let by_score = sort::by_score(&positions, |i| arrivals[i as usize].1);
        let new: Vec<(Key, u32)> =
            rank_order_of_eviction_order(by_score.len(), |i| arrivals[by_score[i] as usize].1)
                .into_iter()
                .map(|i| {
                    let a = by_score[i] as usize;
                    (rank_key(arrivals[a].1, arrivals[a].0), slots[a])
                })
                .collect();
        let bulk = (gone.len() + new.len()) * 8 >= n0.max(64);
        if bulk {
            self.order = merged_index(&self.order, &gone, &new);
        } else {
            self.order.remove_sorted(&gone);
            self.order.insert_sorted(&new);
        }
        // Per-slot values; trees follow unless they are rebuilt below.
        crate::huge::reserve(&mut self.scores, n1.saturating_sub(n0));
        crate::huge::reserve(&mut self.last, n1.saturating_sub(n0));
        self.scores.resize(n1, 0.0);
        self.last.resize(n1, 0);
        for (i, (&(_, score), &slot)) in arrivals.iter().zip(&slots).enumerate() {
            if let Some(&ahead) = slots.get(i + 8) {
                prefetch(&self.last[ahead as usize]);
                prefetch(&self.scores[ahead as usize]);
            }
            let s = slot as usize;
            let old = if i < victims.len() { self.last[s] } else { 0 };
            self.scores[s] = score;
            self.last[s] = step;
            if !bulk {
                self.stale.update(s, old, step, &self.last);
            }
        }
        if bulk {
            self.rebuild_trees(self.stale.room());
        } else if self.weighted() {
            let updates: Vec<(u32, f64)> = arrivals
                .iter()
                .zip(&slots)
                .map(|(a, &s)| (s, self.weight(a.1)))
                .collect();
            self.weights.set_many(&updates);
        }
        self.recentre_weights();
        slots
    }

    /// Sets new scores: `changes` holds (slot, id, score) with distinct slots.
    pub(crate) fn rescore(&mut self, changes: &[(u32, u64, f64)]) {
        if let Some(top) = changes.iter().map(|c| c.2).reduce(f64::max) {
            self.make_weight_room(top);
        }
        let gone: Vec<Key> = sorted(
            changes
                .iter()
                .enumerate()
                .map(|(i, &(slot, id, _))| {
                    if let Some(&(ahead, _, _)) = changes.get(i + 8) {
                        prefetch(&self.scores[ahead as usize]);
                    }
                    (rank_key(self.scores[slot as usize], id), ())
                })
                .collect(),
        )
        .into_iter()
        .map(|e| e.0)
        .collect();
        let new = sorted(
            changes
                .iter()
                .map(|&(slot, id, score)| (rank_key(score, id), slot))
                .collect(),
        );
        if (gone.len() + new.len()) * 8 >= self.len().max(64) {
            self.order = merged_index(&self.order, &gone, &new);
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
        for (i, &slot) in slots.iter().enumerate() {
            if let Some(&ahead) = slots.get(i + 8) {
                prefetch(&self.last[ahead as usize]);
            }
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

    /// Draws `k` slots i.i.d. from the sampling law at `step` into `out` (the law does not
    /// change; the order index may sort a leaf it reads). Draws go in chunks, so the working
    /// memory beside `out` stays small whatever `k` is.
    pub(crate) fn draw(&mut self, rng: &mut Rng, k: usize, step: u64, out: &mut Vec<u32>) {
        const CHUNK: usize = 4096;
        let mut left = k;
        while left > 0 {
            let c = left.min(CHUNK);
            self.draw_chunk(rng, c, step, out);
            left -= c;
        }
    }

    /// Appends `k` draws to `out`. The random numbers are taken in draw order, then the score
    /// draws are resolved as a batch, their tree walks overlapped.
    fn draw_chunk(&mut self, rng: &mut Rng, k: usize, step: u64, out: &mut Vec<u32>) {
        let n = self.len();
        let coef = self.staleness_coef;
        let stale_total = self.stale.total(step, n);
        let weight_total = if self.weighted() {
            self.weights.total()
        } else {
            0.0
        };
        let start = out.len();
        // Draws by score, resolved below: (position in `out`, rank or cumulative weight).
        let mut by_rank: Vec<(usize, usize)> = Vec::new();
        let mut by_weight: Vec<(usize, f64)> = Vec::new();
        for i in start..start + k {
            let by_staleness = coef >= 1.0 || (coef > 0.0 && rng.next_f64() < coef);
            out.push(if by_staleness {
                if stale_total == 0 {
                    rng.below(n as u64) as u32
                } else {
                    let target = rng.below_u128(stale_total);
                    self.stale.find(step, n, target, &self.last) as u32
                }
            } else {
                match self.mode {
                    Prioritization::Rank => {
                        by_rank.push((i, self.rank.draw(rng.next_f64(), n)));
                        0
                    }
                    _ if weight_total > 0.0 => {
                        by_weight.push((i, rng.next_f64() * weight_total));
                        0
                    }
                    _ => rng.below(n as u64) as u32,
                }
            });
        }
        for (j, &(i, r)) in by_rank.iter().enumerate() {
            if let Some(&(_, ahead)) = by_rank.get(j + 8) {
                self.order.prefetch_rank(ahead);
            }
            out[i] = self.order.select(r).1;
        }
        let targets: Vec<f64> = by_weight.iter().map(|d| d.1).collect();
        for (&(i, _), slot) in by_weight.iter().zip(self.weights.find_many(&targets)) {
            out[i] = slot as u32;
        }
    }

    /// The sampling law at `step`, per slot. O(n); for tests, monitoring and debugging.
    pub(crate) fn probabilities(&self, step: u64) -> Vec<f64> {
        let n = self.len();
        let mut p = vec![0.0; n];
        if n == 0 {
            return p;
        }
        match self.mode {
            Prioritization::Rank => {
                let total = self.rank.total(n);
                let mut r = 0;
                self.order.walk_from(0, &mut |_, slot| {
                    p[slot as usize] = self.rank.weight(r) / total;
                    r += 1;
                    true
                });
            }
            _ => {
                let w: Vec<f64> = self.scores.iter().map(|&s| self.weight(s)).collect();
                let total: f64 = w.iter().sum();
                for (p, x) in p.iter_mut().zip(&w) {
                    *p = if total > 0.0 {
                        x / total
                    } else {
                        1.0 / n as f64
                    };
                }
            }
        }
        let c = self.staleness_coef;
        let total = self.stale.total(step, n) as f64;
        for (slot, p) in p.iter_mut().enumerate() {
            let pc = if total > 0.0 {
                (step - self.last[slot]) as f64 / total
            } else {
                1.0 / n as f64
            };
            *p = (1.0 - c) * *p + c * pc;
        }
        p
    }

    /// Asserts that every structure agrees with the per-slot values; `ids[slot]` is the id at
    /// each slot. For tests.
    pub(crate) fn check(&self, ids: &[u64]) {
        let n = self.len();
        assert_eq!((ids.len(), self.last.len(), self.order.len()), (n, n, n));
        self.order.check();
        let mut expected: Vec<(Key, u32)> = (0..n)
            .map(|s| (rank_key(self.scores[s], ids[s]), s as u32))
            .collect();
        expected.sort_unstable_by_key(|e| e.0);
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
        }
        if self.weighted() && n > 0 {
            let top = self.top_score().expect("non-empty");
            assert!(
                weight_ref_fits(self.mode, self.temperature, self.weight_ref, top),
                "weight reference"
            );
        }
    }
}

/// The index without the sorted keys `gone` and with the sorted `new` entries, rebuilt packed.
fn merged_index(order: &OrderIndex, gone: &[Key], new: &[(Key, u32)]) -> OrderIndex {
    let mut merged = Vec::with_capacity(order.len() + new.len() - gone.len());
    let (mut g, mut a) = (0, 0);
    order.walk_from(0, &mut |key, slot| {
        if g < gone.len() && gone[g] == key {
            g += 1;
            return true;
        }
        while a < new.len() && new[a].0 < key {
            merged.push(new[a]);
            a += 1;
        }
        merged.push((key, slot));
        true
    });
    merged.extend_from_slice(&new[a..]);
    debug_assert_eq!(g, gone.len());
    OrderIndex::from_sorted(&merged)
}
