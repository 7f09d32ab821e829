//! Every check of caller input, in one place: the public methods of [`crate::Archive`] call
//! these before changing anything, so a call that fails has changed nothing.

use std::collections::HashSet;

use crate::config::{Config, Prioritization, ID_LIMIT, MAX_SAMPLE};
use crate::error::{invalid, Result};
use crate::id::Id;
use crate::novelty::Metric;
use crate::residents::sq_norm;

pub(crate) fn score(score: f64, prio: Prioritization) -> Result<()> {
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

pub(crate) fn scores(scores: &[f64], prio: Prioritization) -> Result<()> {
    scores.iter().try_for_each(|&s| score(s, prio))
}

/// Embedding rows or queries: finite, and non-zero under the cosine metric.
pub(crate) fn vectors(values: &[f32], dim: usize, metric: Metric, what: &str) -> Result<()> {
    if values.iter().any(|x| !x.is_finite()) {
        return invalid(format!("{what} must be finite"));
    }
    if metric == Metric::Cosine && values.chunks_exact(dim).any(|r| sq_norm(r) == 0.0) {
        return invalid(format!("{what} must be non-zero for the cosine metric"));
    }
    Ok(())
}

/// The arguments of `add`, but for the parents' ids (the lineage log checks those):
/// lengths, scores, payload sizes, embeddings, and room in the id space.
pub(crate) fn add(
    cfg: &Config,
    next_id: u64,
    payloads: &[&[u8]],
    scores: &[f64],
    parents: Option<usize>,
    embeddings: Option<&[f32]>,
) -> Result<()> {
    let m = payloads.len();
    if next_id
        .checked_add(m as u64)
        .map_or(true, |end| end > ID_LIMIT)
    {
        return invalid(format!(
            "the id space is exhausted: ids must stay below 2^63, next id is {next_id}"
        ));
    }
    if scores.len() != m {
        return invalid(format!("got {m} payloads but {} scores", scores.len()));
    }
    self::scores(scores, cfg.prioritization)?;
    if let Some(p) = payloads.iter().find(|p| p.len() > cfg.max_payload_bytes) {
        return invalid(format!(
            "payload of {} bytes exceeds max_payload_bytes = {}",
            p.len(),
            cfg.max_payload_bytes
        ));
    }
    if let Some(len) = parents.filter(|&len| len != m) {
        return invalid(format!("got {m} payloads but {len} parents"));
    }
    match (cfg.embedding_dim, embeddings) {
        (None, Some(_)) => invalid("this archive has no embedding_dim; pass embeddings=None"),
        (None, None) => Ok(()),
        (Some(dim), None) if m > 0 => invalid(format!(
            "this archive has embedding_dim = {dim}; add needs embeddings"
        )),
        (Some(_), None) => Ok(()),
        (Some(dim), Some(e)) => {
            if m.checked_mul(dim) != Some(e.len()) {
                return invalid(format!(
                    "embeddings must have shape ({m}, {dim}), got {} values",
                    e.len()
                ));
            }
            vectors(e, dim, cfg.metric, "embeddings")
        }
    }
}

pub(crate) fn distinct(ids: &[Id], what: &str) -> Result<()> {
    if ids.len() > 1 {
        let mut seen = HashSet::with_capacity(ids.len());
        if let Some(id) = ids.iter().find(|&&id| !seen.insert(id)) {
            return invalid(format!("id {id} appears twice in {what}"));
        }
    }
    Ok(())
}

pub(crate) fn same_length(ids: usize, scores: usize) -> Result<()> {
    if ids != scores {
        return invalid(format!("got {ids} ids but {scores} scores"));
    }
    Ok(())
}

/// `step` of `sample` and `probabilities`: not behind any resident's last_step.
pub(crate) fn step(step: u64, max_last_step: u64) -> Result<()> {
    if step < max_last_step {
        return invalid(format!(
            "step {step} is smaller than a resident's last_step {max_last_step}"
        ));
    }
    Ok(())
}

/// `k` of `sample`.
pub(crate) fn sample_size(k: usize) -> Result<()> {
    if k > MAX_SAMPLE {
        return invalid(format!("k must be at most {MAX_SAMPLE}, got {k}"));
    }
    Ok(())
}

/// Novelty queries; returns the embedding width.
pub(crate) fn queries(cfg: &Config, queries: &[f32], k: usize) -> Result<usize> {
    let Some(dim) = cfg.embedding_dim else {
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
    vectors(queries, dim, cfg.metric, "queries")?;
    Ok(dim)
}
