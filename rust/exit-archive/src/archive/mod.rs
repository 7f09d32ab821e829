//! `Archive`: the coordinator. Each public method checks its input (validate.rs, and the
//! lineage log for parents), then moves the data through the parts that own it:
//! - `LineageLog` (lineage.rs): lineage of every id, and each id's last slot;
//! - `Priorities` (priorities/): scores, last steps and every sampling and eviction structure;
//! - `Residents` (residents.rs): ids, steps, sample counts, payloads and embeddings by slot;
//! - the planner (planner.rs) decides what a batch insertion evicts or rejects.
//!
//! Queries are in `queries.rs`, the consistency check for tests in `invariants.rs`.

#[cfg(test)]
mod batch_paths;
#[cfg(any(test, feature = "check-invariants"))]
mod invariants;
mod queries;

pub use queries::{EntryInfo, Stats};

use crate::config::Config;
use crate::error::{try_with_capacity, Error, Result};
use crate::id::Id;
use crate::lineage::LineageLog;
use crate::planner;
use crate::prefetch;
use crate::priorities::{Arrival, Priorities};
use crate::residents::Residents;
use crate::rng::Rng;
use crate::validate;

/// A set of slots (open addressing, sized for its expected count): finds repeats in a batch
/// of ids without sorting it.
struct SlotSet {
    table: Vec<u32>,
    mask: usize,
}

impl SlotSet {
    const EMPTY: u32 = u32::MAX;

    fn with_room(count: usize) -> Self {
        let size = (2 * count).next_power_of_two().max(8);
        SlotSet {
            table: vec![Self::EMPTY; size],
            mask: size - 1,
        }
    }

    /// Adds `slot`; false when it was there already.
    fn insert(&mut self, slot: u32) -> bool {
        let mut i = (slot as usize).wrapping_mul(0x9E37_79B9) & self.mask;
        loop {
            match self.table[i] {
                Self::EMPTY => {
                    self.table[i] = slot;
                    return true;
                }
                s if s == slot => return false,
                _ => i = (i + 1) & self.mask,
            }
        }
    }
}

/// Event counters that snapshots carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub evicted: u64,
    pub rejected: u64,
    pub removed: u64,
    pub sampled: u64,
}

/// Prioritized task archive; see the crate documentation.
#[derive(Clone)]
pub struct Archive {
    cfg: Config,
    rng: Rng,
    log: LineageLog,
    residents: Residents,
    priorities: Priorities,
    counters: Counters,
}

/// The parts an archive is made of, for snapshots: taken apart to be written, checked and
/// built when read.
pub(crate) struct Parts<'a> {
    pub cfg: &'a Config,
    pub rng: &'a Rng,
    pub log: &'a LineageLog,
    pub residents: &'a Residents,
    pub priorities: &'a Priorities,
    pub counters: Counters,
}

impl Archive {
    /// An empty archive; fails on an invalid configuration.
    pub fn new(cfg: Config) -> Result<Self> {
        cfg.validate()?;
        Ok(Archive {
            rng: Rng::new(cfg.seed),
            log: LineageLog::default(),
            residents: Residents::new(cfg.embedding_dim.unwrap_or(0)),
            priorities: Priorities::new(&cfg),
            counters: Counters::default(),
            cfg,
        })
    }

    /// An archive from parts that agree with each other (a validated snapshot): the log
    /// records the slot of every resident, and the priorities hold one value per slot.
    pub(crate) fn from_parts(
        cfg: Config,
        rng: Rng,
        log: LineageLog,
        residents: Residents,
        priorities: Priorities,
        counters: Counters,
    ) -> Self {
        debug_assert_eq!(residents.len(), priorities.len());
        Archive {
            cfg,
            rng,
            log,
            residents,
            priorities,
            counters,
        }
    }

    /// The parts, to be written.
    pub(crate) fn parts(&self) -> Parts<'_> {
        Parts {
            cfg: &self.cfg,
            rng: &self.rng,
            log: &self.log,
            residents: &self.residents,
            priorities: &self.priorities,
            counters: self.counters,
        }
    }

    /// The configuration the archive was created with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Number of resident entries.
    pub fn len(&self) -> usize {
        self.residents.len()
    }

    /// Whether no entry is resident.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The configured capacity.
    pub fn capacity(&self) -> usize {
        self.cfg.capacity
    }

    /// The id the next inserted entry will get.
    pub fn next_id(&self) -> Id {
        Id(self.log.next_id())
    }

    /// Whether `id` is resident.
    pub fn contains(&self, id: Id) -> bool {
        self.slot_of(id.0).is_some()
    }

    /// The slot of a resident id: its log entry names the slot it was placed in last, which
    /// holds it iff it is still resident (ids are never reused).
    pub(crate) fn slot_of(&self, id: u64) -> Option<usize> {
        let slot = self.log.get(id)?.slot as usize;
        (slot < self.len() && self.residents.id(slot) == id).then_some(slot)
    }

    /// Slots of resident ids, or the first id that is not resident.
    fn slots_of(&self, ids: &[Id]) -> Result<Vec<usize>> {
        prefetch::ahead(ids, prefetch::AHEAD, |id| self.log.prefetch(id.0))
            .map(|&id| self.slot_of(id.0).ok_or(Error::UnknownId(id)))
            .collect()
    }

    /// Resident ids in ascending order.
    pub fn ids(&self) -> Vec<Id> {
        let mut ids: Vec<Id> = self.residents.records().iter().map(|r| Id(r.id)).collect();
        ids.sort_unstable();
        ids
    }

    /// Inserts entries as if one at a time and returns their ids (rejected ones included).
    ///
    /// `parents[i]` is None for a root, or any id inserted before entry `i` whose lineage is
    /// kept (evicted and rejected ids too); `embeddings` is row-major `(n, embedding_dim)`
    /// and required iff `embedding_dim` is set.
    pub fn add(
        &mut self,
        payloads: &[&[u8]],
        scores: &[f64],
        parents: Option<&[Option<Id>]>,
        embeddings: Option<&[f32]>,
        step: u64,
    ) -> Result<Vec<Id>> {
        let first = self.log.next_id();
        let m = payloads.len();
        validate::add(
            &self.cfg,
            first,
            payloads,
            scores,
            parents.map(|p| p.len()),
            embeddings,
        )?;
        let mut ids = try_with_capacity(m, "ids")?;
        self.log.push_children(parents, m)?;
        let mut taken = Vec::new();
        let plan = planner::plan(
            scores,
            self.len(),
            self.cfg.capacity,
            self.cfg.admission,
            self.priorities.eviction_order().map(|c| {
                taken.push(c);
                c.score
            }),
        );
        let victims = &taken[..plan.victims];
        let arrivals: Vec<Arrival> = plan
            .survivors
            .iter()
            .map(|&i| Arrival {
                id: first + i as u64,
                score: scores[i as usize],
            })
            .collect();
        let slots = self.priorities.admit(victims, &arrivals, step);
        let dim = self.cfg.embedding_dim.unwrap_or(0);
        self.residents.place(
            &slots,
            plan.survivors.iter().map(|&i| {
                let i = i as usize;
                let row = embeddings.map(|e| &e[i * dim..(i + 1) * dim]);
                (first + i as u64, payloads[i], row)
            }),
            step,
        );
        for (a, &slot) in arrivals.iter().zip(&slots) {
            self.log[a.id].slot = slot;
        }
        for v in victims {
            self.log.release(v.id);
        }
        let c = &mut self.counters;
        c.evicted = c
            .evicted
            .saturating_add((plan.victims + plan.evicted_new) as u64);
        c.rejected = c.rejected.saturating_add(plan.rejected as u64);
        ids.extend((first..first + m as u64).map(Id));
        Ok(ids)
    }

    /// Sets new scores of resident ids (repeated ids apply in order: the last one wins).
    pub fn update_scores(&mut self, ids: &[Id], scores: &[f64]) -> Result<()> {
        validate::same_length(ids.len(), scores.len())?;
        let slots = self.slots_of(ids)?;
        validate::scores(scores, self.cfg.prioritization)?;
        // The last occurrence of each slot wins: walk backwards, keep the first seen.
        let mut seen = SlotSet::with_room(ids.len());
        let changes: Vec<(u32, u64, f64)> = (0..ids.len())
            .rev()
            .filter(|&i| seen.insert(slots[i] as u32))
            .map(|i| (slots[i] as u32, ids[i].0, scores[i]))
            .collect();
        self.priorities.rescore(&changes);
        Ok(())
    }

    /// Removes resident entries (their lineage is kept).
    pub fn remove(&mut self, ids: &[Id]) -> Result<()> {
        self.slots_of(ids)?;
        validate::distinct(ids, "remove")?;
        for &Id(id) in ids {
            let slot = self.slot_of(id).expect("checked resident");
            let last_id = self.residents.id(self.len() - 1);
            self.priorities.remove(slot, id, last_id);
            if let Some(moved) = self.residents.swap_remove(slot) {
                self.log[moved].slot = slot as u32;
            }
            self.log.release(id);
        }
        self.counters.removed = self.counters.removed.saturating_add(ids.len() as u64);
        Ok(())
    }

    /// The largest last_step among residents (0 when empty).
    pub fn max_last_step(&self) -> u64 {
        self.priorities.max_last_step()
    }

    /// Draws `k` ids i.i.d. from the sampling law at call start, then marks them sampled at
    /// `step` (last_step = step, times_sampled + 1). `k` is at most [`crate::MAX_SAMPLE`].
    pub fn sample(&mut self, k: usize, step: u64) -> Result<Vec<Id>> {
        validate::sample_size(k)?;
        let mut ids = try_with_capacity(k, "drawn ids")?;
        let slots = self.sample_slots(k, step)?;
        ids.extend(slots.iter().map(|&s| Id(self.residents.id(s as usize))));
        Ok(ids)
    }

    /// `sample`, and the payloads of the drawn ids, in one call: under a lock held for the
    /// call, no eviction can come between the draw and the read.
    pub fn sample_with_payloads(&mut self, k: usize, step: u64) -> Result<(Vec<Id>, Vec<&[u8]>)> {
        validate::sample_size(k)?;
        let mut ids = try_with_capacity(k, "drawn ids")?;
        let mut payloads = try_with_capacity(k, "payload views")?;
        let slots = self.sample_slots(k, step)?;
        ids.extend(slots.iter().map(|&s| Id(self.residents.id(s as usize))));
        payloads.extend(slots.iter().map(|&s| self.residents.payload(s as usize)));
        Ok((ids, payloads))
    }

    /// The drawn slots, marked sampled; ids and payloads are read from them.
    fn sample_slots(&mut self, k: usize, step: u64) -> Result<Vec<u32>> {
        if self.is_empty() {
            return crate::error::invalid("cannot sample from an empty archive");
        }
        validate::step(step, self.max_last_step())?;
        // Allocated before anything changes (as the callers' outputs are), so a failure
        // changes nothing.
        let mut slots = try_with_capacity(k, "drawn slots")?;
        self.priorities.draw(&mut self.rng, k, step, &mut slots);
        self.priorities.touch(&slots, step);
        let residents = &mut self.residents;
        let records = residents.records().as_ptr();
        for &slot in prefetch::ahead(&slots, prefetch::AHEAD, |&s| {
            prefetch::prefetch(prefetch::at(records, s as usize))
        }) {
            residents.mark_sampled(slot as usize);
        }
        self.counters.sampled = self.counters.sampled.saturating_add(k as u64);
        Ok(slots)
    }

    /// Forgets the lineage of non-resident ids below `before` (clamped to `next_id`) and
    /// returns the new floor. Afterwards those ids are unknown to `lineage` and cannot be
    /// parents; residents keep their records until they leave the archive. Bounds the log at
    /// [`crate::LINEAGE_BYTES_PER_ID`] × (ids since the floor) plus one record per resident.
    pub fn forget_lineage(&mut self, before: Id) -> Id {
        let floor = before.0.min(self.log.next_id()).max(self.log.base());
        let n = self.len();
        let residents = &self.residents;
        self.log.forget_before(floor, |id, r| {
            (r.slot as usize) < n && residents.id(r.slot as usize) == id
        });
        Id(floor)
    }

    /// First id whose lineage is still kept (0 unless `forget_lineage` was called).
    pub fn lineage_floor(&self) -> Id {
        Id(self.log.base())
    }
}
