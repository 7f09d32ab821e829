//! `Archive`: the coordinator. Each public method checks its input (validate.rs), then moves
//! the data through the parts that own it:
//! - `LineageLog` (lineage.rs): lineage of every id, and each id's last slot;
//! - `Priorities` (priorities/): scores, last steps and every sampling and eviction structure;
//! - `Residents` (residents.rs): ids, steps, sample counts, payloads and embeddings by slot;
//! - the planner (planner.rs) decides what a batch insertion evicts or rejects.

use crate::config::Config;
use crate::error::{try_with_capacity, Error, Result};
use crate::lineage::{Lineage, LineageLog, NOT_PLACED};
use crate::novelty;
use crate::planner;
use crate::priorities::Priorities;
use crate::residents::Residents;
use crate::rng::Rng;
use crate::validate;

/// Per-entry bookkeeping of a resident id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EntryInfo {
    /// Current score.
    pub score: f64,
    /// Parent, root and depth.
    pub lineage: Lineage,
    /// The `step` of the `add` that inserted it.
    pub added_step: u64,
    /// The last `step` it was sampled at (its `added_step` until then).
    pub last_step: u64,
    /// How many draws returned it.
    pub times_sampled: u64,
}

/// Counters and sizes for monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    /// Resident entries.
    pub len: usize,
    /// The configured capacity.
    pub capacity: usize,
    /// The id the next inserted entry gets.
    pub next_id: u64,
    /// Entries evicted by insertions (including entries of a batch evicted within it).
    pub evicted: u64,
    /// Entries refused by the `NotBelowMin` admission rule.
    pub rejected: u64,
    /// Entries taken out by `remove`.
    pub removed: u64,
    /// Ids returned by `sample`, in total.
    pub sampled: u64,
    /// Sum of resident payload lengths.
    pub payload_bytes: u64,
    /// Bytes held by the lineage log.
    pub lineage_bytes: usize,
    /// Bytes held by the whole archive.
    pub memory_bytes: usize,
    /// Lowest resident score (NaN when empty).
    pub score_min: f64,
    /// Highest resident score (NaN when empty).
    pub score_max: f64,
    /// Mean resident score (NaN when empty).
    pub score_mean: f64,
    /// Largest resident depth.
    pub depth_max: u32,
    /// The largest last_step among residents (0 when empty).
    pub max_last_step: u64,
    /// First id whose lineage is still kept.
    pub lineage_floor: u64,
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
    pub(crate) cfg: Config,
    pub(crate) rng: Rng,
    pub(crate) log: LineageLog,
    pub(crate) residents: Residents,
    pub(crate) priorities: Priorities,
    pub(crate) counters: Counters,
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
    pub fn next_id(&self) -> u64 {
        self.log.next_id()
    }

    /// Whether `id` is resident.
    pub fn contains(&self, id: u64) -> bool {
        self.slot_of(id).is_some()
    }

    /// The slot of a resident id: its log entry names the slot it was placed in last, which
    /// holds it iff it is still resident (ids are never reused).
    /// Slots of resident ids (None for any other id), with the log prefetched ahead.
    fn slots_of(&self, ids: &[u64]) -> Result<Vec<usize>> {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| {
                if let Some(&ahead) = ids.get(i + 8) {
                    self.log.prefetch(ahead as i64);
                }
                self.slot_of(id).ok_or(Error::UnknownId(id))
            })
            .collect()
    }

    pub(crate) fn slot_of(&self, id: u64) -> Option<usize> {
        let slot = self.log.get(id)?.slot as usize;
        (slot < self.len() && self.residents.id(slot) == id).then_some(slot)
    }

    /// Resident ids in ascending order.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.residents.records().iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids
    }

    /// Inserts entries as if one at a time and returns their ids (rejected ones included).
    ///
    /// `parents[i]` is -1 for a root or any id inserted before entry `i` whose lineage is kept
    /// (evicted and rejected ids too); `embeddings` is row-major `(n, embedding_dim)` and
    /// required iff `embedding_dim` is set.
    pub fn add(
        &mut self,
        payloads: &[&[u8]],
        scores: &[f64],
        parents: Option<&[i64]>,
        embeddings: Option<&[f32]>,
        step: u64,
    ) -> Result<Vec<u64>> {
        let first = self.next_id();
        validate::add(
            &self.cfg,
            first,
            |p| self.log.get(p).map(|r| r.depth),
            payloads,
            scores,
            parents,
            embeddings,
        )?;
        let m = payloads.len();
        self.log.reserve(m);
        for i in 0..m {
            let parent = parents.map_or(-1, |p| p[i]);
            if let Some(&ahead) = parents.and_then(|p| p.get(i + 16)) {
                self.log.prefetch(ahead);
            }
            self.log.push(u64::try_from(parent).ok());
        }
        let n = self.len();
        let mut taken = Vec::new();
        let plan = planner::plan(
            scores,
            n,
            self.cfg.capacity,
            self.cfg.admission,
            self.priorities.lowest().map(|c| {
                taken.push(c);
                c.score
            }),
        );
        let victims = &taken[..plan.victims];
        let arrivals: Vec<(u64, f64)> = plan
            .survivors
            .iter()
            .map(|&i| (first + i as u64, scores[i as usize]))
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
        for (&(id, _), &slot) in arrivals.iter().zip(&slots) {
            self.log[id].slot = slot;
        }
        for v in victims {
            self.log.release(v.id);
        }
        let c = &mut self.counters;
        c.evicted = c
            .evicted
            .saturating_add((plan.victims + plan.evicted_new) as u64);
        c.rejected = c.rejected.saturating_add(plan.rejected as u64);
        Ok((first..first + m as u64).collect())
    }

    /// Sets new scores of resident ids (repeated ids apply in order: the last one wins).
    pub fn update_scores(&mut self, ids: &[u64], scores: &[f64]) -> Result<()> {
        validate::same_length(ids.len(), scores.len())?;
        let slots = self.slots_of(ids)?;
        validate::scores(scores, self.cfg.prioritization)?;
        let mut changes: Vec<(u32, u64, f64)> = Vec::with_capacity(ids.len());
        if ids.len() == 1 {
            changes.push((slots[0] as u32, ids[0], scores[0]));
        } else {
            // Keep the last occurrence of each slot.
            let mut order: Vec<(u32, u32)> = slots
                .iter()
                .enumerate()
                .map(|(i, &s)| (s as u32, i as u32))
                .collect();
            order.sort_unstable();
            for (k, &(slot, i)) in order.iter().enumerate() {
                if order.get(k + 1).map_or(true, |next| next.0 != slot) {
                    changes.push((slot, ids[i as usize], scores[i as usize]));
                }
            }
        }
        self.priorities.rescore(&changes);
        Ok(())
    }

    /// Removes resident entries (their lineage is kept).
    pub fn remove(&mut self, ids: &[u64]) -> Result<()> {
        self.slots_of(ids)?;
        validate::distinct(ids, "remove")?;
        for &id in ids {
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
    pub fn sample(&mut self, k: usize, step: u64) -> Result<Vec<u64>> {
        validate::sample_size(k)?;
        let mut ids = try_with_capacity(k, "drawn ids")?;
        let slots = self.sample_slots(k, step)?;
        ids.extend(slots.iter().map(|&s| self.residents.id(s as usize)));
        Ok(ids)
    }

    /// `sample`, and the payloads of the drawn ids, in one call: under a lock held for the
    /// call, no eviction can come between the draw and the read.
    pub fn sample_with_payloads(&mut self, k: usize, step: u64) -> Result<(Vec<u64>, Vec<&[u8]>)> {
        validate::sample_size(k)?;
        let mut ids = try_with_capacity(k, "drawn ids")?;
        let mut payloads = try_with_capacity(k, "payload views")?;
        let slots = self.sample_slots(k, step)?;
        ids.extend(slots.iter().map(|&s| self.residents.id(s as usize)));
        payloads.extend(slots.iter().map(|&s| self.residents.payload(s as usize)));
        Ok((ids, payloads))
    }

    /// The drawn slots, marked sampled; ids and payloads are read from them.
    fn sample_slots(&mut self, k: usize, step: u64) -> Result<Vec<u32>> {
        if self.is_empty() {
            return crate::error::invalid("cannot sample from an empty archive");
        }
        validate::step(step, self.max_last_step())?;
        validate::sample_size(k)?;
        // Allocated before anything changes (as the callers' outputs are), so a failure
        // changes nothing.
        let mut slots = try_with_capacity(k, "drawn slots")?;
        self.priorities.draw(&mut self.rng, k, step, &mut slots);
        self.priorities.touch(&slots, step);
        for (i, &slot) in slots.iter().enumerate() {
            if let Some(&ahead) = slots.get(i + 8) {
                self.residents.prefetch(ahead as usize);
            }
            self.residents.mark_sampled(slot as usize);
        }
        self.counters.sampled = self.counters.sampled.saturating_add(k as u64);
        Ok(slots)
    }

    /// The sampling probability of every resident at `step`, by ascending id. O(n log n);
    /// meant for tests, monitoring and debugging.
    pub fn probabilities(&self, step: u64) -> Result<Vec<(u64, f64)>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        validate::step(step, self.max_last_step())?;
        let p = self.priorities.probabilities(step);
        let mut out: Vec<(u64, f64)> = self
            .residents
            .records()
            .iter()
            .map(|r| r.id)
            .zip(p)
            .collect();
        out.sort_unstable_by_key(|x| x.0);
        Ok(out)
    }

    /// Payloads of resident ids.
    pub fn get(&self, ids: &[u64]) -> Result<Vec<&[u8]>> {
        let slots = self.slots_of(ids)?;
        Ok(slots
            .into_iter()
            .map(|s| self.residents.payload(s))
            .collect())
    }

    /// Score, lineage, steps and sample count of resident ids.
    pub fn info(&self, ids: &[u64]) -> Result<Vec<EntryInfo>> {
        let slots = self.slots_of(ids)?;
        Ok(ids
            .iter()
            .zip(slots)
            .map(|(&id, s)| {
                let r = self.residents.record(s);
                EntryInfo {
                    score: self.priorities.score(s),
                    lineage: self.log[id].lineage(),
                    added_step: r.added_step,
                    last_step: self.priorities.last_step(s),
                    times_sampled: r.times_sampled,
                }
            })
            .collect())
    }

    /// Forgets the lineage of non-resident ids below `before` (clamped to `next_id`) and
    /// returns the new floor. Afterwards those ids are unknown to `lineage` and cannot be
    /// parents; residents keep their records until they leave the archive. Bounds the log at
    /// [`crate::LINEAGE_BYTES_PER_ID`] × (ids since the floor) plus one record per resident.
    pub fn forget_lineage(&mut self, before: u64) -> u64 {
        let floor = before.min(self.next_id()).max(self.log.base());
        let n = self.len();
        let residents = &self.residents;
        self.log.forget_before(floor, |id, r| {
            (r.slot as usize) < n && residents.id(r.slot as usize) == id
        });
        floor
    }

    /// First id whose lineage is still kept (0 unless `forget_lineage` was called).
    pub fn lineage_floor(&self) -> u64 {
        self.log.base()
    }

    /// Lineage of any id ever inserted, evicted or not (unless forgotten).
    pub fn lineage(&self, ids: &[u64]) -> Result<Vec<Lineage>> {
        ids.iter()
            .map(|&id| {
                self.log
                    .get(id)
                    .map(|r| r.lineage())
                    .ok_or(Error::UnknownId(id))
            })
            .collect()
    }

    /// Mean distance of each query (row-major `(q, embedding_dim)`) to its min(k, n) nearest
    /// resident embeddings; +inf when there are none.
    pub fn novelty(&self, queries: &[f32], k: usize) -> Result<Vec<f32>> {
        let dim = validate::queries(&self.cfg, queries, k)?;
        Ok(self
            .knn_checked(queries, k)
            .mean_distance(queries.len() / dim))
    }

    /// Exact `min(k, n)` nearest residents of each query; `Neighbors::slot` holds slots, see
    /// [`Archive::id_at_slot`].
    pub fn knn(&self, queries: &[f32], k: usize) -> Result<novelty::Neighbors> {
        validate::queries(&self.cfg, queries, k)?;
        Ok(self.knn_checked(queries, k))
    }

    fn knn_checked(&self, queries: &[f32], k: usize) -> novelty::Neighbors {
        novelty::knn(
            self.residents.embeddings(),
            self.residents.sq_norms(),
            self.cfg.embedding_dim.unwrap_or(1),
            queries,
            k,
            self.cfg.metric,
        )
    }

    /// The resident id stored at a dense slot (as returned by [`Archive::knn`]).
    pub fn id_at_slot(&self, slot: u32) -> Option<u64> {
        ((slot as usize) < self.len()).then(|| self.residents.id(slot as usize))
    }

    /// Embedding of a resident id (None when the archive has no embedding_dim).
    pub fn embedding(&self, id: u64) -> Result<Option<&[f32]>> {
        let s = self.slot_of(id).ok_or(Error::UnknownId(id))?;
        Ok(self.residents.embedding(s))
    }

    /// Row-major embeddings of the resident slots 0..len, and their squared norms.
    pub(crate) fn embedding_rows(&self) -> (&[f32], &[f32]) {
        (self.residents.embeddings(), self.residents.sq_norms())
    }

    /// Counters, sizes and score summary.
    pub fn stats(&self) -> Stats {
        let n = self.len();
        let scores = self.priorities.scores();
        let (mut lo, mut hi, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
        for &s in scores {
            lo = lo.min(s);
            hi = hi.max(s);
            sum += s;
        }
        let lineage_bytes = self.log.memory_bytes();
        let nan_if_empty = |x: f64| if n > 0 { x } else { f64::NAN };
        Stats {
            len: n,
            capacity: self.cfg.capacity,
            next_id: self.next_id(),
            evicted: self.counters.evicted,
            rejected: self.counters.rejected,
            removed: self.counters.removed,
            sampled: self.counters.sampled,
            payload_bytes: self.residents.live_bytes(),
            lineage_bytes,
            memory_bytes: lineage_bytes
                + self.residents.memory_bytes()
                + self.priorities.memory_bytes(),
            score_min: nan_if_empty(lo),
            score_max: nan_if_empty(hi),
            score_mean: nan_if_empty(sum / n as f64),
            depth_max: self
                .residents
                .records()
                .iter()
                .map(|r| self.log[r.id].depth)
                .max()
                .unwrap_or(0),
            max_last_step: self.max_last_step(),
            lineage_floor: self.lineage_floor(),
        }
    }

    /// Asserts internal consistency; for tests and fuzzing.
    pub fn check_invariants(&self) {
        let n = self.len();
        assert!(n <= self.cfg.capacity);
        let ids: Vec<u64> = self.residents.records().iter().map(|r| r.id).collect();
        self.priorities.check(&ids);
        for (s, &id) in ids.iter().enumerate() {
            assert_eq!(self.log[id].slot as usize, s, "log slot of resident {id}");
            assert_eq!(self.slot_of(id), Some(s));
        }
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert!(
            sorted.windows(2).all(|w| w[0] < w[1]),
            "an id resides twice"
        );
        assert!(sorted.last().map_or(true, |&id| id < self.next_id()));
        for (id, r) in self.log.pinned() {
            assert!(
                r.slot != NOT_PLACED && self.slot_of(id).is_some(),
                "pinned non-resident"
            );
        }
        self.log.check();
        if let Some(dim) = self.cfg.embedding_dim {
            let (rows, norms) = self.embedding_rows();
            assert_eq!((rows.len(), norms.len()), (n * dim, n));
        }
    }
}
