//! Step 2 of loading: every value, checked once, in named steps that each return the typed
//! part they vouch for (configuration, RNG, lineage, residents, rank order, weight
//! reference). What older versions lack (the rank order, proportional's weight reference) is
//! filled in here, so that the parts agree with each other when the archive is built.

use std::collections::HashMap;

use super::columns::Columns;
use super::format::{Header, Word};
use super::pipeline::Verifier;
use super::read::Raw;
use crate::archive::{Archive, Counters};
use crate::config::{Admission, Config, Prioritization, ID_LIMIT};
use crate::error::{corrupt, CorruptKind, Error, Result};
use crate::id::Id;
use crate::lineage::{LineageLog, LogRecord, NOT_PLACED, NO_PARENT};
use crate::novelty::Metric;
use crate::priorities::{ascending_bits, initial_weight_ref, weight_ref_fits, Priorities};
use crate::residents::{Record, Residents};
use crate::rng::Rng;

/// A snapshot whose parts agree: what `Archive::from_parts` needs.
pub(super) struct Validated {
    cfg: Config,
    rng: Rng,
    counters: Counters,
    log: LineageLog,
    residents: Residents,
    priorities: Priorities,
}

impl Validated {
    pub(super) fn into_archive(self) -> Archive {
        Archive::from_parts(
            self.cfg,
            self.rng,
            self.log,
            self.residents,
            self.priorities,
            self.counters,
        )
    }
}

pub(super) fn validate(raw: Raw) -> Result<Validated> {
    let Raw {
        header: h,
        columns: mut cols,
        verified,
    } = raw;
    let cfg = config(&h)?;
    let rng = rng(&h)?;
    let next_id = h.get(Word::NextId);
    if next_id > ID_LIMIT {
        return corrupt(CorruptKind::IdLimit);
    }
    let n = h.get(Word::Residents);
    if n > cfg.capacity as u64 || n > next_id {
        return corrupt(CorruptKind::TooManyResidents);
    }
    let lineage = Lineage::check(&h, &mut cols)?;
    let scores = resident_values(&h, &cfg, &cols, &verified, &lineage)?;
    let stored_order = std::mem::take(&mut cols.rank_order);
    let order = rank_order(&h, &scores, &cols.id, stored_order)?;
    let weight_ref = weight_reference(&h, &cfg, &scores)?;
    let mut log = lineage.into_log();
    for (s, &id) in cols.id.iter().enumerate() {
        log[id].slot = s as u32;
    }
    let priorities = Priorities::from_ranked(
        &cfg,
        &cols.id,
        scores,
        std::mem::take(&mut cols.last_step),
        &order,
        weight_ref,
    );
    let residents = residents(&cfg, cols, verified.sq_norms);
    Ok(Validated {
        cfg,
        rng,
        counters: Counters {
            evicted: h.get(Word::Evicted),
            rejected: h.get(Word::Rejected),
            removed: h.get(Word::Removed),
            sampled: h.get(Word::Sampled),
        },
        log,
        residents,
        priorities,
    })
}

/// The configuration a header describes.
fn config(h: &Header) -> Result<Config> {
    let modes = h.get(Word::Modes);
    let metric = match modes & 0xff {
        0 => Metric::Cosine,
        1 => Metric::L2,
        _ => return corrupt(CorruptKind::UnknownMode("metric")),
    };
    let prioritization = match (modes >> 8 & 0xff, h.version) {
        (0, _) => Prioritization::Rank,
        (1, _) => Prioritization::Proportional,
        (2, 3..) => Prioritization::Softmax,
        _ => return corrupt(CorruptKind::UnknownMode("prioritization")),
    };
    let admission = match (modes >> 16, h.version) {
        (0, _) => Admission::Always,
        (1, 3..) => Admission::NotBelowMin,
        _ => return corrupt(CorruptKind::UnknownMode("admission rule")),
    };
    let dim = h.get(Word::EmbeddingDim);
    let cfg = Config {
        capacity: usize::try_from(h.get(Word::Capacity)).unwrap_or(0),
        embedding_dim: (dim > 0).then_some(usize::try_from(dim).unwrap_or(usize::MAX)),
        metric,
        prioritization,
        temperature: f64::from_bits(h.get(Word::Temperature)),
        staleness_coef: f64::from_bits(h.get(Word::StalenessCoef)),
        admission,
        seed: h.get(Word::Seed),
        max_payload_bytes: usize::try_from(h.get(Word::MaxPayloadBytes)).unwrap_or(usize::MAX),
    };
    match cfg.validate() {
        Ok(()) => Ok(cfg),
        Err(Error::Invalid(why)) => corrupt(CorruptKind::Config(why)),
        Err(other) => Err(other),
    }
}

fn rng(h: &Header) -> Result<Rng> {
    let state = [Word::Rng0, Word::Rng1, Word::Rng2, Word::Rng3].map(|w| h.get(w));
    Rng::from_state(state).ok_or(Error::Corrupt(CorruptKind::RngState))
}

/// The lineage columns, checked: each record agrees with its parent's whenever that is kept;
/// pinned records (ids below the floor) are sorted and below the floor.
struct Lineage {
    base: u64,
    records: Vec<LogRecord>,
    /// Pinned records, sorted by id.
    pinned: Vec<(u64, LogRecord)>,
}

impl Lineage {
    fn check(h: &Header, cols: &mut Columns) -> Result<Lineage> {
        let base = h.get(Word::LineageFloor);
        if h.get(Word::Pinned) > base {
            return corrupt(CorruptKind::PinnedRecords);
        }
        let record = |parent, root, depth| LogRecord {
            parent,
            root,
            depth,
            slot: NOT_PLACED,
        };
        let ids = std::mem::take(&mut cols.pinned_id);
        if ids.windows(2).any(|w| w[0] >= w[1]) || ids.iter().any(|&p| p >= base) {
            return corrupt(CorruptKind::PinnedRecords);
        }
        let pinned: Vec<(u64, LogRecord)> = (0..ids.len())
            .map(|k| {
                let r = record(
                    cols.pinned_parent[k],
                    cols.pinned_root[k],
                    cols.pinned_depth[k],
                );
                (ids[k], r)
            })
            .collect();
        let records: Vec<LogRecord> = (0..cols.parent.len())
            .map(|i| record(cols.parent[i], cols.root[i], cols.depth[i]))
            .collect();
        let lineage = Lineage {
            base,
            records,
            pinned,
        };
        let all = lineage.pinned.iter().copied().chain(
            lineage
                .records
                .iter()
                .enumerate()
                .map(|(i, &r)| (base + i as u64, r)),
        );
        for (id, r) in all {
            if !lineage.consistent(id, &r) {
                return corrupt(CorruptKind::Lineage(Id(id)));
            }
        }
        Ok(lineage)
    }

    fn get(&self, id: u64) -> Option<&LogRecord> {
        if id >= self.base {
            self.records.get((id - self.base) as usize)
        } else {
            let k = self.pinned.binary_search_by_key(&id, |p| p.0).ok()?;
            Some(&self.pinned[k].1)
        }
    }

    /// A root is its own root at depth 0; a child agrees with its parent's record, or, when
    /// that was forgotten, lies below it.
    fn consistent(&self, id: u64, r: &LogRecord) -> bool {
        if r.parent == NO_PARENT {
            return r.root == id && r.depth == 0;
        }
        if r.parent >= id {
            return false;
        }
        match self.get(r.parent) {
            Some(p) => r.root == p.root && p.depth.checked_add(1) == Some(r.depth),
            None => r.root <= r.parent && r.depth >= 1,
        }
    }

    fn into_log(self) -> LineageLog {
        let pinned: HashMap<u64, LogRecord> = self.pinned.into_iter().collect();
        LineageLog::from_parts(self.base, self.records, pinned)
    }
}

/// The residents' columns: unique ids with lineage (every pinned record's id among them),
/// valid scores, steps in order, payload lengths that add up, embeddings that were finite
/// (and non-zero under cosine) when read. Returns the scores.
fn resident_values(
    h: &Header,
    cfg: &Config,
    cols: &Columns,
    verified: &Verifier,
    lineage: &Lineage,
) -> Result<Vec<f64>> {
    let next_id = h.get(Word::NextId);
    let mut seen = vec![false; lineage.records.len()];
    let mut seen_pinned = vec![false; lineage.pinned.len()];
    for &id in &cols.id {
        let fresh = if id >= next_id {
            false
        } else if id >= lineage.base {
            !std::mem::replace(&mut seen[(id - lineage.base) as usize], true)
        } else {
            match lineage.pinned.binary_search_by_key(&id, |p| p.0) {
                Ok(k) => !std::mem::replace(&mut seen_pinned[k], true),
                Err(_) => false,
            }
        };
        if !fresh {
            return corrupt(CorruptKind::ResidentIds);
        }
    }
    if seen_pinned.contains(&false) {
        return corrupt(CorruptKind::PinnedNotResident);
    }
    let scores: Vec<f64> = cols.score.iter().map(|&b| f64::from_bits(b)).collect();
    if crate::validate::scores(&scores, cfg.prioritization).is_err() {
        return corrupt(CorruptKind::Score);
    }
    if cols
        .added_step
        .iter()
        .zip(&cols.last_step)
        .any(|(a, l)| l < a)
    {
        return corrupt(CorruptKind::Steps);
    }
    let lens = &cols.payload_len;
    if lens.iter().map(|&l| l as u64).sum::<u64>() != h.get(Word::PayloadBytes)
        || lens.iter().any(|&l| l as usize > cfg.max_payload_bytes)
    {
        return corrupt(CorruptKind::PayloadLengths);
    }
    if cfg.embedding_dim.is_some()
        && (verified.non_finite || (cfg.metric == Metric::Cosine && verified.zero))
    {
        return corrupt(CorruptKind::Embedding);
    }
    Ok(scores)
}

/// The slots in rank order (score descending, then id ascending): as stored (version 4 on),
/// checked to be a permutation in strictly ascending order, or sorted for older files.
fn rank_order(h: &Header, scores: &[f64], ids: &[u64], stored: Vec<u32>) -> Result<Vec<u32>> {
    let n = ids.len();
    let key = |s: u32| (!ascending_bits(scores[s as usize]), ids[s as usize]);
    if h.version < 4 {
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by_key(|&s| key(s));
        return Ok(order);
    }
    let mut hit = vec![false; n];
    for &s in &stored {
        if s as usize >= n || std::mem::replace(&mut hit[s as usize], true) {
            return corrupt(CorruptKind::RankOrder);
        }
    }
    if stored.windows(2).any(|w| key(w[0]) >= key(w[1])) {
        return corrupt(CorruptKind::RankOrder);
    }
    Ok(stored)
}

/// The reference of the score weights: stored (softmax from version 3, proportional from
/// version 5), or, for an older proportional file, the initial one unless the top score lies
/// outside its window.
fn weight_reference(h: &Header, cfg: &Config, scores: &[f64]) -> Result<f64> {
    let top = scores.iter().copied().reduce(f64::max);
    let mode = cfg.prioritization;
    let stored = f64::from_bits(h.get(Word::WeightRef));
    match mode {
        Prioritization::Proportional if h.version < 5 => {
            let initial = initial_weight_ref(mode);
            Ok(match top {
                Some(top) if !weight_ref_fits(mode, cfg.temperature, initial, top) => top,
                _ => initial,
            })
        }
        Prioritization::Rank if stored.is_finite() => Ok(stored),
        Prioritization::Rank => corrupt(CorruptKind::WeightReference),
        _ => {
            let top = top.unwrap_or(stored);
            if weight_ref_fits(mode, cfg.temperature, stored, top) {
                Ok(stored)
            } else {
                corrupt(CorruptKind::WeightReference)
            }
        }
    }
}

/// The residents' records, payloads and embeddings, from checked columns.
fn residents(cfg: &Config, cols: Columns, sq_norms: Vec<f32>) -> Residents {
    let mut offset = 0u64;
    let records: Vec<Record> = (0..cols.id.len())
        .map(|s| {
            let len = cols.payload_len[s];
            let r = Record {
                id: cols.id[s],
                added_step: cols.added_step[s],
                times_sampled: cols.times_sampled[s],
                offset,
                len,
                cap: len,
            };
            offset += len as u64;
            r
        })
        .collect();
    Residents::from_parts(
        cfg.embedding_dim.unwrap_or(0),
        records,
        cols.payloads,
        cols.embeddings,
        sq_norms,
    )
}
