//! Score weights of the weighted modes, taken relative to a reference score near the
//! highest one: softmax `exp((score − ref) / T)`, proportional `(score / ref)^(1/T)`. Both are
//! the formula's `h` times one common factor, which `P_S = h / Σh` cancels. The reference
//! follows the highest resident score with `WEIGHT_SLACK` of slack (in log-weight units) on
//! either side, so the largest weight stays within e^±WEIGHT_SLACK: sums cannot overflow,
//! the top weight never underflows, and moving the reference (an O(n) reweighting) is rare.

use super::Priorities;
use crate::config::Prioritization;

pub(crate) const WEIGHT_SLACK: f64 = 256.0;

/// The reference a new archive starts with: weights are then the plain formula's h.
pub(crate) fn initial_weight_ref(mode: Prioritization) -> f64 {
    match mode {
        Prioritization::Proportional => 1.0,
        _ => 0.0,
    }
}

/// Log of the weight of `score` relative to the reference: where `score` lies in the slack
/// window. Zero for a proportional score of 0 (weight 0 whatever the reference).
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
    let x = log_weight(mode, temperature, weight_ref, top);
    valid && (-WEIGHT_SLACK..=WEIGHT_SLACK).contains(&x)
}

impl Priorities {
    /// The tree weight of a score.
    #[inline]
    pub(super) fn weight(&self, score: f64) -> f64 {
        let t = self.temperature;
        match self.mode {
            Prioritization::Softmax => ((score - self.weight_ref) / t).exp(),
            _ if t == 1.0 => score / self.weight_ref,
            _ => (score / self.weight_ref).powf(1.0 / t),
        }
    }

    /// Moves the reference up to `incoming` (the largest score about to be weighted) when its
    /// weight could overflow.
    pub(super) fn make_weight_room(&mut self, incoming: f64) {
        let x = log_weight(self.mode, self.temperature, self.weight_ref, incoming);
        if self.weighted() && x > WEIGHT_SLACK {
            self.weight_ref = incoming;
            self.rebuild_trees(self.weights.room());
        }
    }

    /// Re-centres the reference on the highest score when that left the window.
    pub(super) fn recentre_weights(&mut self) {
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
}
