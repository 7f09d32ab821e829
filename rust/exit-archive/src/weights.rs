//! Per-slot sampling weights: a sum tree of f64 score weights (proportional mode) and an exact
//! integer Fenwick tree of (count, last_step) pairs that samples slots by staleness
//! `step - last_step` for any `step` without touching every slot.

use crate::rng::Rng;

/// Complete binary sum tree over slots. Parent sums are recomputed, never accumulated, so
/// repeated updates do not drift.
#[derive(Clone, Default)]
pub struct SumTree {
    leaves: usize,
    nodes: Vec<f64>,
}

impl SumTree {
    pub fn with_slots(slots: usize) -> Self {
        let leaves = slots.max(1).next_power_of_two();
        SumTree {
            leaves,
            nodes: vec![0.0; 2 * leaves],
        }
    }

    pub fn slots(&self) -> usize {
        self.leaves
    }

    pub fn total(&self) -> f64 {
        self.nodes.get(1).copied().unwrap_or(0.0)
    }

    pub fn get(&self, slot: usize) -> f64 {
        self.nodes[self.leaves + slot]
    }

    pub fn set(&mut self, slot: usize, weight: f64) {
        let mut i = self.leaves + slot;
        self.nodes[i] = weight;
        while i > 1 {
            i /= 2;
            self.nodes[i] = self.nodes[2 * i] + self.nodes[2 * i + 1];
        }
    }

    /// Rebuilds with room for `slots`, keeping the first `keep` weights.
    pub fn grow(&mut self, slots: usize, keep: usize) {
        let mut next = SumTree::with_slots(slots);
        let leaves = next.leaves;
        for s in 0..keep {
            next.nodes[leaves + s] = self.get(s);
        }
        for i in (1..leaves).rev() {
            next.nodes[i] = next.nodes[2 * i] + next.nodes[2 * i + 1];
        }
        *self = next;
    }

    /// A slot drawn with probability weight / total; total must be positive.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let mut u = rng.next_f64() * self.total();
        let mut i = 1;
        while i < self.leaves {
            let left = self.nodes[2 * i];
            // Rounding can leave u at the edge of an empty subtree; never descend into one.
            if u < left || self.nodes[2 * i + 1] <= 0.0 {
                i *= 2;
            } else {
                u -= left;
                i = 2 * i + 1;
            }
        }
        i - self.leaves
    }
}

/// Fenwick tree over slots of the sum of last_step. Residents occupy the dense slots 0..n, so
/// a node's resident count is implicit; the staleness weight of the slots a node covers at
/// `step` is `step * count - sum`, exact in integers.
#[derive(Clone, Default)]
pub struct StalenessTree {
    last: Vec<u128>,
}

impl StalenessTree {
    pub fn with_slots(slots: usize) -> Self {
        StalenessTree {
            last: vec![0; slots.max(1).next_power_of_two() + 1],
        }
    }

    pub fn slots(&self) -> usize {
        self.last.len() - 1
    }

    /// Rebuilds with room for `slots` from the last_steps of resident slots 0..n.
    pub fn rebuild(&mut self, slots: usize, last_steps: &[u64]) {
        let mut next = StalenessTree::with_slots(slots);
        let n = next.slots();
        for (s, &ls) in last_steps.iter().enumerate() {
            next.last[s + 1] += ls as u128;
        }
        for i in 1..=n {
            let parent = i + (i & i.wrapping_neg());
            if parent <= n {
                next.last[parent] += next.last[i];
            }
        }
        *self = next;
    }

    /// Adds `value` to the last_step sum at `slot`.
    pub fn add(&mut self, slot: usize, value: u64) {
        let n = self.slots();
        let mut i = slot + 1;
        while i <= n {
            self.last[i] += value as u128;
            i += i & i.wrapping_neg();
        }
    }

    /// Subtracts `value` from the last_step sum at `slot`.
    pub fn sub(&mut self, slot: usize, value: u64) {
        let n = self.slots();
        let mut i = slot + 1;
        while i <= n {
            self.last[i] -= value as u128;
            i += i & i.wrapping_neg();
        }
    }

    /// Changes the last_step held at `slot` from `old` to `new`.
    pub fn touch(&mut self, slot: usize, old: u64, new: u64) {
        if new >= old {
            self.add(slot, new - old);
        } else {
            self.sub(slot, old - new);
        }
    }

    /// Σ (step − last_step) over the `residents` slots.
    pub fn total(&self, step: u64, residents: usize, last_sum: u128) -> u128 {
        step as u128 * residents as u128 - last_sum
    }

    /// The slot holding cumulative staleness position `target` (0 <= target < total) among
    /// the `residents` dense slots.
    pub fn find(&self, step: u64, residents: usize, mut target: u128) -> usize {
        let n = self.slots();
        let mut pos = 0;
        let mut bit = n;
        while bit > 0 {
            let next = pos + bit;
            if next <= n {
                let count = residents.saturating_sub(pos).min(bit);
                let w = step as u128 * count as u128 - self.last[next];
                if w <= target {
                    pos = next;
                    target -= w;
                }
            }
            bit /= 2;
        }
        pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_tree_samples_proportionally_and_skips_zero_weights() {
        let mut t = SumTree::with_slots(5);
        let w = [1.0, 0.0, 3.0, 0.0, 4.0];
        for (i, &x) in w.iter().enumerate() {
            t.set(i, x);
        }
        t.grow(9, 5);
        assert_eq!(t.total(), 8.0);
        let mut rng = Rng::new(1);
        let mut counts = [0u32; 5];
        for _ in 0..80_000 {
            counts[t.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[1] + counts[3], 0);
        for (c, x) in counts.iter().zip(w) {
            let expected = 10_000.0 * x;
            assert!(
                (*c as f64 - expected).abs() < 0.05 * expected + 1.0,
                "{counts:?}"
            );
        }
    }

    #[test]
    fn staleness_find_matches_linear_scan() {
        let last = [3u64, 0, 7, 7, 1, 5];
        let mut t = StalenessTree::default();
        t.rebuild(6, &last);
        t.touch(4, 1, 2);
        t.touch(0, 3, 3);
        let last = [3u64, 0, 7, 7, 2, 5];
        let step = 9u64;
        let sum: u128 = last.iter().map(|&x| x as u128).sum();
        let total = t.total(step, last.len(), sum);
        let mut expected = Vec::new();
        for (slot, &ls) in last.iter().enumerate() {
            expected.extend(std::iter::repeat_n(slot, (step - ls) as usize));
        }
        assert_eq!(total as usize, expected.len());
        for (target, &slot) in expected.iter().enumerate() {
            assert_eq!(t.find(step, last.len(), target as u128), slot);
        }
        // Dropping the last resident slot: its weight (4) leaves the total.
        t.sub(5, 5);
        assert_eq!(t.find(step, 5, total - 5), 4);
    }
}
