use crate::error::{invalid, Result};
use crate::novelty::Metric;

/// How scores become sampling weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prioritization {
    /// h = (1/rank)^(1/temperature), rank 1 = highest score, ties by smaller id.
    Rank,
    /// h = score^(1/temperature); scores must be >= 0; all zero samples uniformly.
    Proportional,
    /// h = exp(score / temperature) (the ExIt paper's κ = 1/temperature); any finite score.
    Softmax,
}

impl Prioritization {
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
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "always" => Ok(Admission::Always),
            "not_below_min" => Ok(Admission::NotBelowMin),
            other => invalid(format!(
                "admission must be 'always' or 'not_below_min', got {other:?}"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Admission::Always => "always",
            Admission::NotBelowMin => "not_below_min",
        }
    }
}

impl Metric {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "cosine" => Ok(Metric::Cosine),
            "l2" => Ok(Metric::L2),
            other => invalid(format!("metric must be 'cosine' or 'l2', got {other:?}")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::L2 => "l2",
        }
    }
}

/// Largest capacity: slots are addressed with u32 and one value is reserved.
pub const MAX_CAPACITY: usize = u32::MAX as usize - 1;

/// Archive options; see the crate docs for the sampling formulas.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub capacity: usize,
    pub embedding_dim: Option<usize>,
    pub metric: Metric,
    pub prioritization: Prioritization,
    pub temperature: f64,
    pub staleness_coef: f64,
    pub admission: Admission,
    pub seed: u64,
    /// Largest accepted payload, in bytes.
    pub max_payload_bytes: usize,
}

impl Config {
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

    pub fn validate(&self) -> Result<()> {
        if self.capacity < 1 || self.capacity > MAX_CAPACITY {
            return invalid(format!(
                "capacity must be in [1, {MAX_CAPACITY}], got {}",
                self.capacity
            ));
        }
        if self.embedding_dim == Some(0) {
            return invalid("embedding_dim must be positive");
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
