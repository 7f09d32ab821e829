use crate::error::{invalid, Result};
use crate::novelty::Metric;

/// How scores become sampling weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prioritization {
    /// h = (1/rank)^(1/temperature), rank 1 = highest score, ties by smaller id.
    Rank,
    /// h = score^(1/temperature), computed as (score/max)^(1/temperature) so that it never
    /// overflows; scores must be >= 0; all zero samples uniformly.
    Proportional,
    /// h = exp(score / temperature) (the ExIt paper's κ = 1/temperature); any finite score.
    Softmax,
}

impl Prioritization {
    /// The mode named `"rank"`, `"proportional"` or `"softmax"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "rank" => Ok(Prioritization::Rank),
            "proportional" => Ok(Prioritization::Proportional),
            "softmax" => Ok(Prioritization::Softmax),
            other => invalid(format!(
                "prioritization must be 'rank', 'proportional' or 'softmax', got {other:?}"
            )),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Prioritization::Rank => "rank",
            Prioritization::Proportional => "proportional",
            Prioritization::Softmax => "softmax",
        }
    }
}

/// What a full archive does with a new entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Every entry enters, evicting the lowest resident (score, then smallest id).
    Always,
    /// The ExIt paper's rule: an entry enters only if its score is >= the lowest resident
    /// score (and then evicts that resident); a lower one is rejected.
    NotBelowMin,
}

impl Admission {
    /// The rule named `"always"` or `"not_below_min"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "always" => Ok(Admission::Always),
            "not_below_min" => Ok(Admission::NotBelowMin),
            other => invalid(format!(
                "admission must be 'always' or 'not_below_min', got {other:?}"
            )),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Admission::Always => "always",
            Admission::NotBelowMin => "not_below_min",
        }
    }
}

impl Metric {
    /// The metric named `"cosine"` or `"l2"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "cosine" => Ok(Metric::Cosine),
            "l2" => Ok(Metric::L2),
            other => invalid(format!("metric must be 'cosine' or 'l2', got {other:?}")),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
        }
    }
}

/// Largest capacity: slots are addressed with u32 and one value is reserved.
pub const MAX_CAPACITY: usize = u32::MAX as usize - 1;

/// Largest `embedding_dim`: 2^20 f32 values (4 MiB) per row, so that no size derived from it
/// (rows × dim, a row's bytes) can overflow.
pub const MAX_EMBEDDING_DIM: usize = 1 << 20;

/// Ids are below 2^63: every id fits an int64 (the Python API names parents with int64 and
/// -1 for none), and `u64::MAX` stays free as the snapshot's "no parent". An `add` that would
/// pass this limit fails; a snapshot whose next id exceeds it is refused.
pub const ID_LIMIT: u64 = 1 << 63;

/// Most ids one `sample` call draws: draws are indexed with u32.
pub const MAX_SAMPLE: usize = u32::MAX as usize;

/// Archive options; see the crate docs for the sampling formulas.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Most residents at once (>= 1).
    pub capacity: usize,
    /// Width of the embeddings `add` requires; None: no embeddings, no novelty.
    pub embedding_dim: Option<usize>,
    /// Distance of the novelty search.
    pub metric: Metric,
    /// How scores become sampling weights.
    pub prioritization: Prioritization,
    /// Temperature of the weights (> 0).
    pub temperature: f64,
    /// Weight of PLR staleness in the sampling mix, in [0, 1].
    pub staleness_coef: f64,
    /// What a full archive does with a new entry.
    pub admission: Admission,
    /// Seed of the sampling stream.
    pub seed: u64,
    /// Largest accepted payload, in bytes.
    pub max_payload_bytes: usize,
}

impl Config {
    /// Defaults (rank, temperature 1, no staleness, admission always, seed 0) for a capacity.
    pub fn new(capacity: usize) -> Self {
        Config {
            capacity,
            embedding_dim: None,
            metric: Metric::Cosine,
            prioritization: Prioritization::Rank,
            temperature: 1.0,
            staleness_coef: 0.0,
            admission: Admission::Always,
            seed: 0,
            max_payload_bytes: 64 << 20,
        }
    }

    /// Checks every option; [`crate::Archive::new`] calls it.
    pub fn validate(&self) -> Result<()> {
        if self.capacity < 1 || self.capacity > MAX_CAPACITY {
            return invalid(format!(
                "capacity must be in [1, {MAX_CAPACITY}], got {}",
                self.capacity
            ));
        }
        if let Some(dim) = self.embedding_dim {
            if !(1..=MAX_EMBEDDING_DIM).contains(&dim) {
                return invalid(format!(
                    "embedding_dim must be in [1, {MAX_EMBEDDING_DIM}], got {dim}"
                ));
            }
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return invalid(format!(
                "temperature must be finite and > 0, got {}",
                self.temperature
            ));
        }
        if !(0.0..=1.0).contains(&self.staleness_coef) {
            return invalid(format!(
                "staleness_coef must be in [0, 1], got {}",
                self.staleness_coef
            ));
        }
        if self.max_payload_bytes > u32::MAX as usize {
            return invalid("max_payload_bytes must fit in 32 bits");
        }
        Ok(())
    }
}
