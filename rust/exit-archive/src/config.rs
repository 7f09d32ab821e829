use crate::error::{invalid, Result};
use crate::novelty::Metric;

/// How scores become sampling weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prioritization {
    /// h = (1/rank)^(1/temperature), rank 1 = highest score, ties by smaller id.
    Rank,
    /// h = score^(1/temperature); scores must be >= 0; all zero samples uniformly.
    Proportional,
}

impl Prioritization {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "rank" => Ok(Prioritization::Rank),
            "proportional" => Ok(Prioritization::Proportional),
            other => invalid(format!(
                "prioritization must be 'rank' or 'proportional', got {other:?}"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Prioritization::Rank => "rank",
            Prioritization::Proportional => "proportional",
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
