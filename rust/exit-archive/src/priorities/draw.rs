//! The sampling law: draws, and the law itself for `probabilities`.

use super::Priorities;
use crate::config::Prioritization;
use crate::rng::Rng;

/// Draws resolved per chunk, so the working memory beside the output stays small whatever k.
const CHUNK: usize = 4096;

impl Priorities {
    /// Draws `k` slots i.i.d. from the sampling law at `step` into `out`; reads only.
    pub(crate) fn draw(&self, rng: &mut Rng, k: usize, step: u64, out: &mut Vec<u32>) {
        let mut left = k;
        while left > 0 {
            let c = left.min(CHUNK);
            self.draw_chunk(rng, c, step, out);
            left -= c;
        }
    }

    /// Appends `k` draws to `out`. The random numbers are taken in draw order, then the score
    /// draws are resolved as a batch, their tree walks overlapped.
    fn draw_chunk(&self, rng: &mut Rng, k: usize, step: u64, out: &mut Vec<u32>) {
        let n = self.len();
        let coef = self.staleness_coef;
        let stale_total = self.stale.total(step, n);
        let weight_total = if self.weighted() {
            self.weights.total()
        } else {
            0.0
        };
        let start = out.len();
        // Draws by score, resolved below: (position in `out`, rank or cumulative weight).
        let mut by_rank: Vec<(usize, usize)> = Vec::new();
        let mut by_weight: Vec<(usize, f64)> = Vec::new();
        for i in start..start + k {
            let by_staleness = coef >= 1.0 || (coef > 0.0 && rng.next_f64() < coef);
            out.push(if by_staleness {
                if stale_total == 0 {
                    rng.below(n as u64) as u32
                } else {
                    let target = rng.below_u128(stale_total);
                    self.stale.find(step, n, target, &self.last) as u32
                }
            } else {
                match self.mode {
                    Prioritization::Rank => {
                        by_rank.push((i, self.rank.draw(rng.next_f64(), n)));
                        0
                    }
                    _ if weight_total > 0.0 => {
                        by_weight.push((i, rng.next_f64() * weight_total));
                        0
                    }
                    _ => rng.below(n as u64) as u32,
                }
            });
        }
        let ranks: Vec<usize> = by_rank.iter().map(|d| d.1).collect();
        self.order
            .select_many(&ranks, |j, e| out[by_rank[j].0] = e.slot);
        let targets: Vec<f64> = by_weight.iter().map(|d| d.1).collect();
        for (&(i, _), slot) in by_weight.iter().zip(self.weights.find_many(&targets)) {
            out[i] = slot as u32;
        }
    }

    /// The sampling law at `step`, per slot. O(n); for tests, monitoring and debugging.
    pub(crate) fn probabilities(&self, step: u64) -> Vec<f64> {
        let n = self.len();
        let mut p = vec![0.0; n];
        if n == 0 {
            return p;
        }
        match self.mode {
            Prioritization::Rank => {
                let total = self.rank.total(n);
                let mut r = 0;
                self.order.walk_from(0, &mut |e| {
                    p[e.slot as usize] = self.rank.weight(r) / total;
                    r += 1;
                    true
                });
            }
            _ => {
                let w: Vec<f64> = self.scores.iter().map(|&s| self.weight(s)).collect();
                let total: f64 = w.iter().sum();
                for (p, x) in p.iter_mut().zip(&w) {
                    *p = if total > 0.0 {
                        x / total
                    } else {
                        1.0 / n as f64
                    };
                }
            }
        }
        let c = self.staleness_coef;
        let total = self.stale.total(step, n) as f64;
        for (slot, p) in p.iter_mut().enumerate() {
            let pc = if total > 0.0 {
                (step - self.last[slot]) as f64 / total
            } else {
                1.0 / n as f64
            };
            *p = (1.0 - c) * *p + c * pc;
        }
        p
    }
}
