//! Read-only queries of an [`Archive`]: payloads, bookkeeping, lineage, the sampling law,
//! novelty and statistics.

use super::Archive;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::lineage::Lineage;
use crate::novelty;
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
    pub next_id: Id,
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
    pub lineage_floor: Id,
}

impl Archive {
    /// The sampling probability of every resident at `step`, by ascending id. O(n log n);
    /// meant for tests, monitoring and debugging.
    pub fn probabilities(&self, step: u64) -> Result<Vec<(Id, f64)>> {
        if self.is_empty() {
            return Ok(Vec::new());
        }
        validate::step(step, self.max_last_step())?;
        let p = self.priorities.probabilities(step);
        let mut out: Vec<(Id, f64)> = self
            .residents
            .records()
            .iter()
            .map(|r| Id(r.id))
            .zip(p)
            .collect();
        out.sort_unstable_by_key(|x| x.0);
        Ok(out)
    }

    /// Payloads of resident ids.
    pub fn get(&self, ids: &[Id]) -> Result<Vec<&[u8]>> {
        let slots = self.slots_of(ids)?;
        Ok(slots
            .into_iter()
            .map(|s| self.residents.payload(s))
            .collect())
    }

    /// Score, lineage, steps and sample count of resident ids.
    pub fn info(&self, ids: &[Id]) -> Result<Vec<EntryInfo>> {
        let slots = self.slots_of(ids)?;
        Ok(ids
            .iter()
            .zip(slots)
            .map(|(&id, s)| {
                let r = self.residents.record(s);
                EntryInfo {
                    score: self.priorities.score(s),
                    lineage: self.log[id.0].lineage(),
                    added_step: r.added_step,
                    last_step: self.priorities.last_step(s),
                    times_sampled: r.times_sampled,
                }
            })
            .collect())
    }

    /// Lineage of any id ever inserted, evicted or not (unless forgotten).
    pub fn lineage(&self, ids: &[Id]) -> Result<Vec<Lineage>> {
        ids.iter()
            .map(|&id| {
                self.log
                    .get(id.0)
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
    pub fn id_at_slot(&self, slot: u32) -> Option<Id> {
        ((slot as usize) < self.len()).then(|| Id(self.residents.id(slot as usize)))
    }

    /// Embedding of a resident id (None when the archive has no embedding_dim).
    pub fn embedding(&self, id: Id) -> Result<Option<&[f32]>> {
        let s = self.slot_of(id.0).ok_or(Error::UnknownId(id))?;
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
}
