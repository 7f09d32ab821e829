use std::collections::{BTreeMap, BinaryHeap, HashSet};

use crate::arena::Arena;
use crate::config::{Admission, Config, Prioritization};
use crate::error::{invalid, Error, Result};
use crate::lineage::LineageLog;
use crate::novelty::{self, Metric};
use crate::ostree::{Key, OsTree};
use crate::rng::Rng;
use crate::weights::{StalenessTree, SumTree};

pub(crate) const NO_PARENT: u64 = u64::MAX;
pub(crate) const NOT_RESIDENT: u32 = u32::MAX;

/// Softmax weights are exp((score − softmax_ref) / temperature). The reference follows the
/// highest resident score with this much slack (in units of temperature) on either side, so
/// the largest weight stays within e^±SOFTMAX_SLACK: sums cannot overflow, the top weight
/// never underflows, and moving the reference (an O(n) rebuild) is rare.
pub(crate) const SOFTMAX_SLACK: f64 = 256.0;

/// Lineage of an id: kept for every id ever inserted, evicted ones included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lineage {
    pub parent: Option<u64>,
    pub root: u64,
    pub depth: u32,
}

/// Per-entry bookkeeping of a resident id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EntryInfo {
    pub score: f64,
    pub lineage: Lineage,
    pub added_step: u64,
    pub last_step: u64,
    pub times_sampled: u64,
}

/// Counters and sizes for monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub len: usize,
    pub capacity: usize,
    pub next_id: u64,
    pub evicted: u64,
    /// Entries refused by the `NotBelowMin` admission rule.
    pub rejected: u64,
    pub removed: u64,
    pub sampled: u64,
    pub payload_bytes: u64,
    pub lineage_bytes: usize,
    pub memory_bytes: usize,
    pub score_min: f64,
    pub score_max: f64,
    pub score_mean: f64,
    pub depth_max: u32,
}

/// Bytes of lineage log per id ever inserted: parent u64, root u64, depth u32, slot u32.
pub const LINEAGE_BYTES_PER_ID: usize = std::mem::size_of::<LogRecord>();

/// Lineage of one id, plus its resident slot; one record so a lookup is one cache line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogRecord {
    pub parent: u64,
    pub root: u64,
    pub depth: u32,
    pub slot: u32,
}

/// Bookkeeping of one resident slot, kept together for the same reason.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct SlotRecord {
    pub id: u64,
    pub score: f64,
    pub added_step: u64,
    pub last_step: u64,
    pub times_sampled: u64,
}

/// Prioritized task archive; see the crate documentation.
#[derive(Clone)]
pub struct Archive {
    pub(crate) cfg: Config,
    pub(crate) rng: Rng,
    pub(crate) next_id: u64,
    /// Lineage log, indexed by id (every id ever inserted).
    pub(crate) log: LineageLog,
    /// Residents, indexed by dense slot 0..len.
    pub(crate) slots: Vec<SlotRecord>,
    pub(crate) payloads: Arena,
    pub(crate) embeddings: Vec<f32>,
    pub(crate) sq_norms: Vec<f32>,
    // Sampling and eviction structures.
    order: OsTree,
    rank_cdf: Vec<f64>,
    /// Weights of the proportional and softmax modes.
    prop: SumTree,
    pub(crate) softmax_ref: f64,
    stale: StalenessTree,
    last_sum: u128,
    last_steps: BTreeMap<u64, u32>,
    /// Slots the weight trees have room for.
    room: usize,
    pub(crate) evicted: u64,
    pub(crate) rejected: u64,
    pub(crate) removed: u64,
    pub(crate) sampled: u64,
}

/// Sort key: ascending key order is descending score, then ascending id.
#[inline]
pub(crate) fn order_key(score: f64, id: u64) -> Key {
    let bits = (score + 0.0).to_bits(); // + 0.0 folds -0.0 into 0.0
    let ascending = if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    };
    (!ascending, id)
}

fn check_score(score: f64, prio: Prioritization) -> Result<()> {
    if !score.is_finite() {
        return invalid(format!("scores must be finite, got {score}"));
    }
    if prio == Prioritization::Proportional && score < 0.0 {
        return invalid(format!(
            "proportional prioritization needs scores >= 0, got {score}"
        ));
    }
    Ok(())
}

/// Heap item of a pending new entry: the max-heap pops the lowest score, then smallest id.
#[inline]
fn pending_item(score: f64, id: u64) -> u128 {
    (order_key(score, id).0 as u128) << 64 | !id as u128
}

#[inline]
fn pending_id(item: u128) -> u64 {
    !(item as u64)
}

/// Walks residents in eviction order (score ascending, then id ascending) without changing them.
struct EvictionCursor {
    group_start: usize,
    next: usize,
    group_end: usize,
    current: Option<Key>,
}

impl EvictionCursor {
    fn new(len: usize) -> Self {
        EvictionCursor {
            group_start: len,
            next: len,
            group_end: len,
            current: None,
        }
    }

    fn peek(&mut self, order: &OsTree) -> Option<Key> {
        if self.current.is_none() {
            if self.next == self.group_end {
                if self.group_start == 0 {
                    return None;
                }
                let lowest = order.select(self.group_start - 1);
                self.group_end = self.group_start;
                self.group_start = order.rank_lower_bound(&(lowest.0, 0));
                self.next = self.group_start;
            }
            self.current = Some(order.select(self.next));
        }
        self.current
    }

    fn advance(&mut self) {
        self.next += 1;
        self.current = None;
    }
}

impl Archive {
    pub fn new(cfg: Config) -> Result<Self> {
        cfg.validate()?;
        let rng = Rng::new(cfg.seed);
        Ok(Archive {
            cfg,
            rng,
            next_id: 0,
            log: LineageLog::default(),
            slots: Vec::new(),
            payloads: Arena::default(),
            embeddings: Vec::new(),
            sq_norms: Vec::new(),
            order: OsTree::new(),
            rank_cdf: Vec::new(),
            prop: SumTree::with_slots(1),
            softmax_ref: 0.0,
            stale: StalenessTree::with_slots(1),
            last_sum: 0,
            last_steps: BTreeMap::new(),
            room: 0,
            evicted: 0,
            rejected: 0,
            removed: 0,
            sampled: 0,
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cfg.capacity
    }

    /// The id the next inserted entry will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    pub fn contains(&self, id: u64) -> bool {
        self.slot(id).is_some()
    }

    fn slot(&self, id: u64) -> Option<usize> {
        match self.log.get(id) {
            Some(r) if r.slot != NOT_RESIDENT => Some(r.slot as usize),
            _ => None,
        }
    }

    fn resident_slot(&self, id: u64) -> Result<usize> {
        self.slot(id).ok_or(Error::UnknownId(id))
    }

    /// Whether the sum tree of score weights is in use (proportional and softmax modes).
    fn weighted(&self) -> bool {
        self.cfg.prioritization != Prioritization::Rank
    }

    fn weight(&self, score: f64) -> f64 {
        let t = self.cfg.temperature;
        match self.cfg.prioritization {
            Prioritization::Softmax => ((score - self.softmax_ref) / t).exp(),
            _ if t == 1.0 => score,
            _ => score.powf(1.0 / t),
        }
    }

    /// Softmax: moves the reference to `incoming` (the largest score about to be weighted)
    /// when its weight could overflow; call before any structure changes.
    fn softmax_make_room(&mut self, incoming: f64) {
        if self.cfg.prioritization == Prioritization::Softmax
            && (incoming - self.softmax_ref) / self.cfg.temperature > SOFTMAX_SLACK
        {
            self.softmax_ref = incoming;
            self.rebuild_weights();
        }
    }

    /// Softmax: after a change, re-centres the reference on the highest resident score when
    /// that score left the slack window (an O(n) rebuild, amortized by the slack).
    fn softmax_recentre(&mut self) {
        if self.cfg.prioritization != Prioritization::Softmax || self.is_empty() {
            return;
        }
        let top = self.top_score();
        let x = (top - self.softmax_ref) / self.cfg.temperature;
        if !(-SOFTMAX_SLACK..=SOFTMAX_SLACK).contains(&x) {
            self.softmax_ref = top;
            self.rebuild_weights();
        }
    }

    /// The highest resident score; the archive must not be empty.
    pub(crate) fn top_score(&self) -> f64 {
        let id = self.order.select(0).1;
        self.slots[self.log[id].slot as usize].score
    }

    /// Resident ids in ascending order.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.slots.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids
    }

    /// Inserts entries as if one at a time; returns their new ids.
    ///
    /// `parents[i]` is -1 for a root or any id inserted before entry `i` (evicted ones too);
    /// `embeddings` is row-major `(n, embedding_dim)` and required iff `embedding_dim` is set.
    pub fn add(
        &mut self,
        payloads: &[&[u8]],
        scores: &[f64],
        parents: Option<&[i64]>,
        embeddings: Option<&[f32]>,
        step: u64,
    ) -> Result<Vec<u64>> {
        let m = payloads.len();
        self.validate_add(payloads, scores, parents, embeddings)?;
        let first_id = self.next_id;
        let new_ids: Vec<u64> = (first_id..first_id + m as u64).collect();

        // Plan evictions without touching the structures: candidates are the lowest residents
        // (walked lazily) and the pending new entries.
        let mut victims: Vec<Key> = Vec::new();
        let mut pending: BinaryHeap<u128> = BinaryHeap::with_capacity(m);
        let mut cursor = EvictionCursor::new(self.len());
        let mut size = self.len();
        let mut rejected = 0usize;
        for (&score, &id) in scores.iter().zip(&new_ids) {
            if size == self.cfg.capacity {
                let resident = cursor.peek(&self.order);
                let take_resident = match (resident, pending.peek()) {
                    // On equal scores the resident goes: its id is always smaller.
                    (Some(key), Some(&p)) => key.0 >= (p >> 64) as u64,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                let lowest = if take_resident {
                    let id = resident.expect("resident candidate").1;
                    self.slots[self.log[id].slot as usize].score
                } else {
                    let id = pending_id(*pending.peek().expect("pending candidate"));
                    scores[(id - first_id) as usize]
                };
                if self.cfg.admission == Admission::NotBelowMin && score < lowest {
                    rejected += 1;
                    continue;
                }
                if take_resident {
                    victims.push(resident.expect("resident candidate"));
                    cursor.advance();
                } else {
                    pending.pop();
                }
                size -= 1;
            }
            pending.push(pending_item(score, id));
            size += 1;
        }

        // Lineage for every new id, survivors or not.
        for (i, &id) in new_ids.iter().enumerate() {
            let (p, r, d) = match parents.map(|p| p[i]) {
                Some(p) if p >= 0 => {
                    let p = p as u64;
                    (p, self.log[p].root, self.log[p].depth + 1)
                }
                _ => (NO_PARENT, id, 0),
            };
            self.log.push(LogRecord {
                parent: p,
                root: r,
                depth: d,
                slot: NOT_RESIDENT,
            });
        }
        self.next_id += m as u64;

        let mut survivors: Vec<usize> = pending
            .into_iter()
            .map(|item| (pending_id(item) - first_id) as usize)
            .collect();
        survivors.sort_unstable();
        debug_assert!(survivors.len() >= victims.len());
        if let Some(top) = survivors.iter().map(|&i| scores[i]).reduce(f64::max) {
            self.softmax_make_room(top);
        }
        self.reserve_slots(self.len() + survivors.len() - victims.len());
        let bulk = self.bulk_worthwhile(survivors.len() + victims.len());
        let free_slots: Vec<usize> = victims
            .iter()
            .map(|key| self.detach(key.1, !bulk))
            .collect();
        self.evicted += (victims.len() + m - rejected - survivors.len()) as u64;
        self.rejected += rejected as u64;
        let dim = self.cfg.embedding_dim.unwrap_or(0);
        for (j, &i) in survivors.iter().enumerate() {
            let row = embeddings.map(|e| &e[i * dim..(i + 1) * dim]);
            let slot = free_slots.get(j).copied();
            self.attach(slot, new_ids[i], payloads[i], scores[i], row, step, !bulk);
        }
        if bulk {
            victims.sort_unstable();
            let mut added: Vec<Key> = survivors
                .iter()
                .map(|&i| order_key(scores[i], new_ids[i]))
                .collect();
            added.sort_unstable();
            self.rebuild_order(&victims, &added);
            self.rebuild_weights();
        }
        self.softmax_recentre();
        Ok(new_ids)
    }

    /// Whether `changes` entries are enough of the archive that rebuilding the order and
    /// weights in O(n) beats `changes` O(log n) updates with their cache misses.
    fn bulk_worthwhile(&self, changes: usize) -> bool {
        changes * 48 >= self.len() && self.len() >= 256
    }

    /// Rebuilds the order tree without the sorted keys `removed` and with the sorted `added`.
    fn rebuild_order(&mut self, removed: &[Key], added: &[Key]) {
        let old = self.order.keys();
        let mut merged = Vec::with_capacity(old.len() + added.len() - removed.len());
        let (mut r, mut a) = (0, 0);
        for key in old {
            if r < removed.len() && removed[r] == key {
                r += 1;
                continue;
            }
            while a < added.len() && added[a] < key {
                merged.push(added[a]);
                a += 1;
            }
            merged.push(key);
        }
        merged.extend_from_slice(&added[a..]);
        debug_assert_eq!(r, removed.len());
        self.order = OsTree::from_sorted(&merged);
    }

    /// Rebuilds the staleness and score weight trees from the slots.
    fn rebuild_weights(&mut self) {
        let last_steps: Vec<u64> = self.slots.iter().map(|s| s.last_step).collect();
        self.stale.rebuild(self.room.max(self.len()), &last_steps);
        if self.weighted() {
            let mut prop = SumTree::with_slots(self.room.max(self.len()));
            for s in 0..self.len() {
                prop.set(s, self.weight(self.slots[s].score));
            }
            self.prop = prop;
        }
    }

    fn validate_add(
        &self,
        payloads: &[&[u8]],
        scores: &[f64],
        parents: Option<&[i64]>,
        embeddings: Option<&[f32]>,
    ) -> Result<()> {
        let m = payloads.len();
        if scores.len() != m {
            return invalid(format!("got {m} payloads but {} scores", scores.len()));
        }
        for &s in scores {
            check_score(s, self.cfg.prioritization)?;
        }
        for p in payloads {
            if p.len() > self.cfg.max_payload_bytes {
                return invalid(format!(
                    "payload of {} bytes exceeds max_payload_bytes = {}",
                    p.len(),
                    self.cfg.max_payload_bytes
                ));
            }
        }
        if let Some(parents) = parents {
            if parents.len() != m {
                return invalid(format!("got {m} payloads but {} parents", parents.len()));
            }
            for (i, &p) in parents.iter().enumerate() {
                if p < -1 {
                    return invalid(format!("parent must be -1 (none) or an id, got {p}"));
                }
                if p < 0 {
                    continue;
                }
                let p = p as u64;
                let known = if p >= self.next_id {
                    p < self.next_id + i as u64 // inserted earlier in this batch
                } else {
                    self.log.get(p).is_some()
                };
                if !known {
                    return Err(Error::UnknownId(p));
                }
            }
        }
        match (self.cfg.embedding_dim, embeddings) {
            (None, Some(_)) => invalid("this archive has no embedding_dim; pass embeddings=None"),
            (None, None) => Ok(()),
            (Some(_), None) if m > 0 => invalid(format!(
                "this archive has embedding_dim = {}; add needs embeddings",
                self.cfg.embedding_dim.unwrap_or(0)
            )),
            (Some(_), None) => Ok(()),
            (Some(dim), Some(e)) => {
                if e.len() != m * dim {
                    return invalid(format!(
                        "embeddings must have shape ({m}, {dim}), got {} values",
                        e.len()
                    ));
                }
                check_vectors(e, dim, self.cfg.metric, "embeddings")
            }
        }
    }

    /// Makes room for `len` resident slots; call while every slot 0..len() is resident.
    fn reserve_slots(&mut self, len: usize) {
        if len > self.room {
            let room = len.max(2 * self.room).min(self.cfg.capacity).max(len);
            if self.weighted() {
                self.prop.grow(room, self.len());
            }
            let last_steps: Vec<u64> = self.slots.iter().map(|s| s.last_step).collect();
            self.stale.rebuild(room, &last_steps);
            self.room = room;
        }
        self.grow_rank_cdf(len);
    }

    /// Extends the cumulative rank weights to cover `len` ranks.
    fn grow_rank_cdf(&mut self, len: usize) {
        if self.cfg.prioritization == Prioritization::Rank && len > self.rank_cdf.len() {
            let inv_t = 1.0 / self.cfg.temperature;
            let mut acc = self.rank_cdf.last().copied().unwrap_or(0.0);
            for r in self.rank_cdf.len() + 1..=len {
                acc += (r as f64).powf(-inv_t);
                self.rank_cdf.push(acc);
            }
        }
    }

    /// Writes a resident into `slot` (a detached slot, reused) or a new slot at the end;
    /// `indexed` also updates the order and weight trees (else the caller rebuilds them).
    #[allow(clippy::too_many_arguments)]
    fn attach(
        &mut self,
        slot: Option<usize>,
        id: u64,
        payload: &[u8],
        score: f64,
        row: Option<&[f32]>,
        step: u64,
        indexed: bool,
    ) {
        let slot = match slot {
            Some(s) => {
                if indexed {
                    self.stale.touch(s, self.slots[s].last_step, step);
                }
                self.slots[s].id = id;
                self.slots[s].score = score;
                self.slots[s].added_step = step;
                self.slots[s].last_step = step;
                self.slots[s].times_sampled = 0;
                self.payloads.replace(s, payload);
                if let Some(row) = row {
                    let dim = row.len();
                    self.embeddings[s * dim..(s + 1) * dim].copy_from_slice(row);
                    self.sq_norms[s] = sq_norm(row);
                }
                s
            }
            None => {
                if indexed {
                    self.stale.add(self.slots.len(), step);
                }
                self.slots.push(SlotRecord {
                    id,
                    score,
                    added_step: step,
                    last_step: step,
                    times_sampled: 0,
                });
                self.payloads.push(payload);
                if let Some(row) = row {
                    self.embeddings.extend_from_slice(row);
                    self.sq_norms.push(sq_norm(row));
                }
                self.slots.len() - 1
            }
        };
        self.log[id].slot = slot as u32;
        if indexed {
            self.order.insert(order_key(score, id));
            if self.weighted() {
                let w = self.weight(score);
                self.prop.set(slot, w);
            }
        }
        self.last_sum += step as u128;
        *self.last_steps.entry(step).or_insert(0) += 1;
    }

    /// Takes a resident out of the order, weights and step counts. Its slot keeps its data
    /// and its staleness entry until `attach` reuses it or `move_last_into` drops it.
    fn detach(&mut self, id: u64, indexed: bool) -> usize {
        let slot = self.log[id].slot as usize;
        if indexed {
            let removed = self.order.remove(&order_key(self.slots[slot].score, id));
            debug_assert!(removed);
            if self.weighted() {
                self.prop.set(slot, 0.0);
            }
        }
        let ls = self.slots[slot].last_step;
        self.last_sum -= ls as u128;
        self.forget_last_step(ls);
        self.log[id].slot = NOT_RESIDENT;
        self.log.release(id);
        slot
    }

    fn forget_last_step(&mut self, step: u64) {
        if let Some(c) = self.last_steps.get_mut(&step) {
            *c -= 1;
            if *c == 0 {
                self.last_steps.remove(&step);
            }
        }
    }

    /// Sets new scores; ids must be resident (repeats apply in order).
    pub fn update_scores(&mut self, ids: &[u64], scores: &[f64]) -> Result<()> {
        if ids.len() != scores.len() {
            return invalid(format!("got {} ids but {} scores", ids.len(), scores.len()));
        }
        for (&id, &s) in ids.iter().zip(scores) {
            self.resident_slot(id)?;
            check_score(s, self.cfg.prioritization)?;
        }
        if let Some(top) = scores.iter().copied().reduce(f64::max) {
            self.softmax_make_room(top);
        }
        self.update_scores_unchecked(ids, scores);
        self.softmax_recentre();
        Ok(())
    }

    fn update_scores_unchecked(&mut self, ids: &[u64], scores: &[f64]) {
        if self.bulk_worthwhile(ids.len()) {
            let mut unique = ids.to_vec();
            unique.sort_unstable();
            unique.dedup();
            let key_of =
                |a: &Archive, id: u64| order_key(a.slots[a.log[id].slot as usize].score, id);
            let mut removed: Vec<Key> = unique.iter().map(|&id| key_of(self, id)).collect();
            for (&id, &score) in ids.iter().zip(scores) {
                let slot = self.log[id].slot as usize;
                self.slots[slot].score = score;
                if self.weighted() {
                    let w = self.weight(score);
                    self.prop.set(slot, w);
                }
            }
            let mut added: Vec<Key> = unique.iter().map(|&id| key_of(self, id)).collect();
            removed.sort_unstable();
            added.sort_unstable();
            self.rebuild_order(&removed, &added);
            return;
        }
        for (&id, &score) in ids.iter().zip(scores) {
            let slot = self.log[id].slot as usize;
            self.order.remove(&order_key(self.slots[slot].score, id));
            self.order.insert(order_key(score, id));
            self.slots[slot].score = score;
            if self.weighted() {
                let w = self.weight(score);
                self.prop.set(slot, w);
            }
        }
    }

    /// Removes resident entries (their lineage is kept).
    pub fn remove(&mut self, ids: &[u64]) -> Result<()> {
        let mut seen = HashSet::with_capacity(ids.len());
        for &id in ids {
            self.resident_slot(id)?;
            if !seen.insert(id) {
                return invalid(format!("id {id} appears twice in remove"));
            }
        }
        for &id in ids {
            let slot = self.detach(id, true);
            self.move_last_into(slot);
        }
        self.removed += ids.len() as u64;
        self.softmax_recentre();
        Ok(())
    }

    /// Fills the hole at `slot` with the last slot so residents stay dense.
    fn move_last_into(&mut self, slot: usize) {
        let last = self.len() - 1;
        self.stale
            .touch(slot, self.slots[slot].last_step, self.slots[last].last_step);
        self.stale.sub(last, self.slots[last].last_step);
        if slot != last {
            let id = self.slots[last].id;
            if self.weighted() {
                let w = self.prop.get(last);
                self.prop.set(last, 0.0);
                self.prop.set(slot, w);
            }
            self.log[id].slot = slot as u32;
        }
        self.slots.swap_remove(slot);
        self.payloads.swap_remove(slot);
        if let Some(dim) = self.cfg.embedding_dim {
            if slot != last {
                self.embeddings
                    .copy_within(last * dim..(last + 1) * dim, slot * dim);
            }
            self.embeddings.truncate(last * dim);
            self.sq_norms.swap_remove(slot);
        }
    }

    /// The largest last_step among residents (0 when empty).
    pub fn max_last_step(&self) -> u64 {
        self.last_steps.keys().next_back().copied().unwrap_or(0)
    }

    /// Draws `k` ids i.i.d. from P at call start, then marks them sampled at `step`.
    pub fn sample(&mut self, k: usize, step: u64) -> Result<Vec<u64>> {
        if self.is_empty() {
            return invalid("cannot sample from an empty archive");
        }
        let max_last = self.max_last_step();
        if step < max_last {
            return invalid(format!(
                "step {step} is smaller than a resident's last_step {max_last}"
            ));
        }
        let slots: Vec<usize> = (0..k).map(|_| self.draw_slot(step)).collect();
        let mut out = Vec::with_capacity(k);
        for &slot in &slots {
            let old = self.slots[slot].last_step;
            if old != step {
                self.stale.touch(slot, old, step);
                self.last_sum = self.last_sum - old as u128 + step as u128;
                self.forget_last_step(old);
                *self.last_steps.entry(step).or_insert(0) += 1;
                self.slots[slot].last_step = step;
            }
            self.slots[slot].times_sampled += 1;
            out.push(self.slots[slot].id);
        }
        self.sampled += k as u64;
        Ok(out)
    }

    fn draw_slot(&mut self, step: u64) -> usize {
        let n = self.len();
        let coef = self.cfg.staleness_coef;
        let by_staleness = coef >= 1.0 || (coef > 0.0 && self.rng.next_f64() < coef);
        if by_staleness {
            let total = self.stale.total(step, n, self.last_sum);
            if total == 0 {
                return self.rng.below(n as u64) as usize;
            }
            let target = self.rng.below_u128(total);
            return self.stale.find(step, n, target);
        }
        match self.cfg.prioritization {
            Prioritization::Rank => {
                let cdf = &self.rank_cdf[..n];
                let u = self.rng.next_f64() * cdf[n - 1];
                let rank = cdf.partition_point(|&c| c <= u).min(n - 1);
                let id = self.order.select(rank).1;
                self.log[id].slot as usize
            }
            Prioritization::Proportional | Prioritization::Softmax => {
                if self.prop.total() > 0.0 {
                    self.prop.sample(&mut self.rng)
                } else {
                    self.rng.below(n as u64) as usize
                }
            }
        }
    }

    /// The sampling probability of every resident at `step`, by slot order of `ids()`.
    /// O(n log n); meant for tests, monitoring and debugging.
    pub fn probabilities(&self, step: u64) -> Result<Vec<(u64, f64)>> {
        let n = self.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let max_last = self.max_last_step();
        if step < max_last {
            return invalid(format!(
                "step {step} is smaller than a resident's last_step {max_last}"
            ));
        }
        let mut ps = vec![0.0; n];
        match self.cfg.prioritization {
            Prioritization::Rank => {
                let total = self.rank_cdf[n - 1];
                for (rank, key) in self.order.keys().iter().enumerate() {
                    let slot = self.log[key.1].slot as usize;
                    ps[slot] = ((rank + 1) as f64).powf(-1.0 / self.cfg.temperature) / total;
                }
            }
            Prioritization::Proportional | Prioritization::Softmax => {
                let w: Vec<f64> = self.slots.iter().map(|s| self.weight(s.score)).collect();
                let total: f64 = w.iter().sum();
                for (p, x) in ps.iter_mut().zip(&w) {
                    *p = if total > 0.0 {
                        x / total
                    } else {
                        1.0 / n as f64
                    };
                }
            }
        }
        let c = self.cfg.staleness_coef;
        let total = self.stale.total(step, n, self.last_sum) as f64;
        for (slot, p) in ps.iter_mut().enumerate() {
            let pc = if total > 0.0 {
                (step - self.slots[slot].last_step) as f64 / total
            } else {
                1.0 / n as f64
            };
            *p = (1.0 - c) * *p + c * pc;
        }
        let mut out: Vec<(u64, f64)> = self.slots.iter().map(|s| s.id).zip(ps).collect();
        out.sort_unstable_by_key(|x| x.0);
        Ok(out)
    }

    /// Payloads of resident ids.
    pub fn get(&self, ids: &[u64]) -> Result<Vec<&[u8]>> {
        ids.iter()
            .map(|&id| Ok(self.payloads.get(self.resident_slot(id)?)))
            .collect()
    }

    pub fn info(&self, ids: &[u64]) -> Result<Vec<EntryInfo>> {
        ids.iter()
            .map(|&id| {
                let s = self.resident_slot(id)?;
                Ok(EntryInfo {
                    score: self.slots[s].score,
                    lineage: self.lineage_of(id)?,
                    added_step: self.slots[s].added_step,
                    last_step: self.slots[s].last_step,
                    times_sampled: self.slots[s].times_sampled,
                })
            })
            .collect()
    }

    fn lineage_of(&self, id: u64) -> Result<Lineage> {
        if id >= self.next_id {
            return Err(Error::UnknownId(id));
        }
        let Some(r) = self.log.get(id) else {
            return Err(Error::UnknownId(id)); // forgotten by forget_lineage
        };
        Ok(Lineage {
            parent: (r.parent != NO_PARENT).then_some(r.parent),
            root: r.root,
            depth: r.depth,
        })
    }

    /// Forgets the lineage of evicted ids below `before` (clamped to `next_id`) and returns
    /// the new floor. Afterwards those ids are unknown to `lineage` and cannot be parents;
    /// residents keep their records until they leave the archive. Bounds the log at [`LINEAGE_BYTES_PER_ID`] × (ids
    /// since the floor) plus one record per resident.
    pub fn forget_lineage(&mut self, before: u64) -> u64 {
        let floor = before.min(self.next_id).max(self.log.base());
        self.log.forget_before(floor);
        floor
    }

    /// First id whose lineage is still kept (0 unless `forget_lineage` was called).
    pub fn lineage_floor(&self) -> u64 {
        self.log.base()
    }

    /// Lineage of any id ever inserted, evicted or not.
    pub fn lineage(&self, ids: &[u64]) -> Result<Vec<Lineage>> {
        ids.iter().map(|&id| self.lineage_of(id)).collect()
    }

    /// Mean distance of each query (row-major `(q, embedding_dim)`) to its min(k, n) nearest
    /// resident embeddings; +inf when there are none.
    pub fn novelty(&self, queries: &[f32], k: usize) -> Result<Vec<f32>> {
        let dim = self.query_dim(queries, k)?;
        Ok(self.knn(queries, k)?.mean_distance(queries.len() / dim))
    }

    /// Exact `min(k, n)` nearest residents of each query; `Neighbors::slot` holds slots, see
    /// [`Archive::id_at_slot`].
    pub fn knn(&self, queries: &[f32], k: usize) -> Result<novelty::Neighbors> {
        let dim = self.query_dim(queries, k)?;
        Ok(novelty::knn(
            &self.embeddings,
            &self.sq_norms,
            dim,
            queries,
            k,
            self.cfg.metric,
        ))
    }

    /// The resident id stored at a dense slot (as returned by [`Archive::knn`]).
    pub fn id_at_slot(&self, slot: u32) -> Option<u64> {
        self.slots.get(slot as usize).map(|s| s.id)
    }

    pub(crate) fn query_dim(&self, queries: &[f32], k: usize) -> Result<usize> {
        let Some(dim) = self.cfg.embedding_dim else {
            return invalid("novelty needs an archive created with embedding_dim");
        };
        if k == 0 {
            return invalid("k must be >= 1");
        }
        if queries.len() % dim != 0 {
            return invalid(format!(
                "queries must have shape (q, {dim}), got {} values",
                queries.len()
            ));
        }
        check_vectors(queries, dim, self.cfg.metric, "queries")?;
        Ok(dim)
    }

    /// Embedding of a resident id (None when the archive has no embedding_dim).
    pub fn embedding(&self, id: u64) -> Result<Option<&[f32]>> {
        let s = self.resident_slot(id)?;
        Ok(self
            .cfg
            .embedding_dim
            .map(|d| &self.embeddings[s * d..(s + 1) * d]))
    }

    pub fn stats(&self) -> Stats {
        let n = self.len();
        let (mut lo, mut hi, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
        for s in self.slots.iter().map(|r| r.score) {
            lo = lo.min(s);
            hi = hi.max(s);
            sum += s;
        }
        let lineage_bytes = self.log.memory_bytes();
        let per_slot = self.slots.capacity() * std::mem::size_of::<SlotRecord>()
            + self.sq_norms.capacity() * 4;
        Stats {
            len: n,
            capacity: self.cfg.capacity,
            next_id: self.next_id,
            evicted: self.evicted,
            rejected: self.rejected,
            removed: self.removed,
            sampled: self.sampled,
            payload_bytes: self.payloads.live_bytes(),
            lineage_bytes,
            memory_bytes: lineage_bytes
                + per_slot
                + self.payloads.memory_bytes()
                + self.embeddings.capacity() * 4
                + self.order.memory_bytes()
                + self.rank_cdf.capacity() * 8
                + self.prop.slots() * 16
                + self.stale.slots() * 16,
            score_min: if n > 0 { lo } else { f64::NAN },
            score_max: if n > 0 { hi } else { f64::NAN },
            score_mean: if n > 0 { sum / n as f64 } else { f64::NAN },
            depth_max: self
                .slots
                .iter()
                .map(|s| self.log[s.id].depth)
                .max()
                .unwrap_or(0),
        }
    }

    /// Rebuilds every derived index from the per-slot data (used after loading a snapshot).
    pub(crate) fn rebuild_indexes(&mut self) {
        let n = self.len();
        let mut keys: Vec<Key> = (0..n)
            .map(|s| order_key(self.slots[s].score, self.slots[s].id))
            .collect();
        keys.sort_unstable();
        self.order = OsTree::from_sorted(&keys);
        self.rank_cdf.clear();
        self.grow_rank_cdf(n);
        self.room = n.max(1);
        self.rebuild_weights();
        self.last_sum = self.slots.iter().map(|s| s.last_step as u128).sum();
        self.last_steps.clear();
        for ls in self.slots.iter().map(|s| s.last_step) {
            *self.last_steps.entry(ls).or_insert(0) += 1;
        }
        for r in self.log.iter_mut() {
            r.slot = NOT_RESIDENT;
        }
        for (s, id) in self.slots.iter().map(|r| r.id).enumerate() {
            self.log[id].slot = s as u32;
        }
        self.log.purge_pinned();
    }

    /// Asserts internal consistency; for tests.
    pub fn check_invariants(&self) {
        let n = self.len();
        assert!(n <= self.cfg.capacity);
        assert_eq!(self.order.len(), n);
        self.order.check();
        for (s, id) in self.slots.iter().map(|r| r.id).enumerate() {
            assert_eq!(self.log[id].slot as usize, s);
        }
        let resident = self.log.iter().filter(|r| r.slot != NOT_RESIDENT).count();
        assert_eq!(resident, n);
        assert_eq!(
            self.last_sum,
            self.slots.iter().map(|s| s.last_step as u128).sum::<u128>()
        );
        assert_eq!(
            self.last_steps.values().map(|&c| c as usize).sum::<usize>(),
            n
        );
        assert_eq!(self.log.base() + self.log.len() as u64, self.next_id);
        let pinned = self.log.pinned().into_iter().map(|(id, _)| id);
        for id in pinned.chain(self.log.base()..self.next_id) {
            if self.log[id].parent == NO_PARENT {
                assert_eq!((self.log[id].root, self.log[id].depth), (id, 0));
            } else {
                let p = self.log[id].parent;
                assert!(p < id);
                if let Some(parent) = self.log.get(p) {
                    assert_eq!(self.log[id].root, parent.root);
                    assert_eq!(self.log[id].depth, parent.depth + 1);
                }
            }
        }
        if let Some(dim) = self.cfg.embedding_dim {
            assert_eq!(self.embeddings.len(), n * dim);
        }
        if self.weighted() {
            for (slot, s) in self.slots.iter().enumerate() {
                assert_eq!(self.prop.get(slot), self.weight(s.score), "stale weight");
            }
        }
        if self.cfg.prioritization == Prioritization::Softmax && n > 0 {
            let x = (self.top_score() - self.softmax_ref) / self.cfg.temperature;
            assert!(
                (-SOFTMAX_SLACK..=SOFTMAX_SLACK).contains(&x),
                "softmax reference"
            );
        }
    }
}

pub(crate) fn sq_norm(row: &[f32]) -> f32 {
    row.iter().map(|x| x * x).sum()
}

fn check_vectors(values: &[f32], dim: usize, metric: Metric, what: &str) -> Result<()> {
    if values.iter().any(|x| !x.is_finite()) {
        return invalid(format!("{what} must be finite"));
    }
    if metric == Metric::Cosine && values.chunks_exact(dim).any(|r| sq_norm(r) == 0.0) {
        return invalid(format!("{what} must be non-zero for the cosine metric"));
    }
    Ok(())
}
