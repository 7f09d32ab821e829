//! Score weights of the proportional and softmax modes: an 8-ary tree of sums over per-slot
//! f64 weights. A node is recomputed from its eight children (one cache line), never
//! accumulated, so updates do not drift and the tree is a pure function of its leaves: a
//! loaded snapshot samples exactly as the saved archive would.

use crate::prefetch::{self, prefetch};

const ARITY: usize = 8;

#[derive(Clone, Debug, Default)]
pub(crate) struct WeightTree {
    /// `levels[0]`: per-slot weights; `levels[k + 1][j]`: sum of `levels[k][8j..8j + 8]`; the
    /// last level is the single root.
    levels: Vec<Vec<f64>>,
}

#[inline]
fn sum8(c: &[f64]) -> f64 {
    ((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7]))
}

impl WeightTree {
    /// A tree with room for `slots` weights, all zero.
    pub(crate) fn with_room(slots: usize) -> Self {
        let mut levels = vec![crate::huge::zeroed(slots.max(1).next_multiple_of(ARITY))];
        while levels.last().expect("a level").len() > 1 {
            let below = levels.last().expect("a level").len() / ARITY;
            let len = if below > 1 {
                below.next_multiple_of(ARITY)
            } else {
                1
            };
            levels.push(vec![0.0; len]);
        }
        WeightTree { levels }
    }

    pub(crate) fn room(&self) -> usize {
        self.levels[0].len()
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.levels.iter().map(|l| l.capacity() * 8).sum()
    }

    pub(crate) fn total(&self) -> f64 {
        self.levels.last().map_or(0.0, |root| root[0])
    }

    pub(crate) fn get(&self, slot: usize) -> f64 {
        self.levels[0][slot]
    }

    /// Rebuilds with room for `slots` from the given per-slot weights.
    pub(crate) fn rebuild(&mut self, slots: usize, weights: impl Iterator<Item = f64>) {
        let mut tree = WeightTree::with_room(slots);
        for (leaf, w) in tree.levels[0].iter_mut().zip(weights) {
            *leaf = w;
        }
        for k in 1..tree.levels.len() {
            let (below, above) = tree.levels.split_at_mut(k);
            for (j, node) in above[0].iter_mut().enumerate() {
                if let Some(children) = below[k - 1].get(ARITY * j..ARITY * j + ARITY) {
                    *node = sum8(children);
                }
            }
        }
        *self = tree;
    }

    /// Sets one weight and recomputes its ancestors.
    pub(crate) fn set(&mut self, slot: usize, weight: f64) {
        self.levels[0][slot] = weight;
        let mut j = slot;
        for k in 1..self.levels.len() {
            j /= ARITY;
            let s = sum8(&self.levels[k - 1][ARITY * j..ARITY * j + ARITY]);
            self.levels[k][j] = s;
        }
    }

    /// Sets many weights, then recomputes each touched ancestor once, level by level.
    pub(crate) fn set_many(&mut self, updates: &[(u32, f64)]) {
        if updates.len() < 8 {
            for &(slot, w) in updates {
                self.set(slot as usize, w);
            }
            return;
        }
        let mut dirty: Vec<u64> = vec![0; (self.levels[0].len() / ARITY).div_ceil(64)];
        let leaves = self.levels[0].as_ptr();
        let hint = |&(s, _): &(u32, f64)| prefetch(prefetch::at(leaves, s as usize));
        for &(slot, w) in prefetch::ahead(updates, prefetch::AHEAD, hint) {
            self.levels[0][slot as usize] = w;
            let parent = slot as usize / ARITY;
            dirty[parent / 64] |= 1 << (parent % 64);
        }
        for k in 1..self.levels.len() {
            let mut next: Vec<u64> = vec![0; (self.levels[k].len() / ARITY).div_ceil(64).max(1)];
            for (word_index, &word) in dirty.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let j = word_index * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let s = sum8(&self.levels[k - 1][ARITY * j..ARITY * j + ARITY]);
                    self.levels[k][j] = s;
                    let parent = j / ARITY;
                    next[parent / 64] |= 1 << (parent % 64);
                }
            }
            dirty = next;
        }
    }

    /// The slot at cumulative weight `u` (0 <= u < total); never a zero-weight slot. One
    /// descent of `find_many`, kept to test it against.
    #[cfg(test)]
    pub(crate) fn find(&self, u: f64) -> usize {
        let mut d = Descent {
            node: 0,
            u,
            at_end: false,
        };
        for k in (0..self.levels.len() - 1).rev() {
            self.descend(k, &mut d);
        }
        d.node
    }

    /// `find` of every target, several descents in lockstep: each level's next nodes are
    /// prefetched together, so their cache misses overlap instead of queueing.
    pub(crate) fn find_many(&self, targets: &[f64]) -> Vec<usize> {
        const LANES: usize = 8;
        let mut out = Vec::with_capacity(targets.len());
        for group in targets.chunks(LANES) {
            let mut lanes = [Descent {
                node: 0,
                u: 0.0,
                at_end: false,
            }; LANES];
            for (d, &u) in lanes.iter_mut().zip(group) {
                d.u = u;
            }
            let lanes = &mut lanes[..group.len()];
            for k in (0..self.levels.len() - 1).rev() {
                for d in lanes.iter_mut() {
                    self.descend(k, d);
                    if k > 0 {
                        prefetch(&self.levels[k - 1][ARITY * d.node]);
                    }
                }
            }
            out.extend(lanes.iter().map(|d| d.node));
        }
        out
    }

    /// One level down: from `d.node` at level k + 1 to the child at level k holding `d.u`.
    /// Rounding can leave `u` past the last weight; then the last non-empty child is followed.
    #[inline]
    fn descend(&self, k: usize, d: &mut Descent) {
        let j = d.node;
        let children = &self.levels[k][ARITY * j..ARITY * j + ARITY];
        let mut pick = None;
        let mut last_positive = 0;
        for (c, &w) in children.iter().enumerate() {
            if w > 0.0 {
                last_positive = c;
                if !d.at_end && d.u < w {
                    pick = Some(c);
                    break;
                }
                d.u -= w;
            }
        }
        d.at_end |= pick.is_none();
        d.node = ARITY * j + pick.unwrap_or(last_positive);
    }
}

/// A draw's walk down the tree: the node reached, what is left of its target, and whether
/// rounding pushed it past the end.
#[derive(Clone, Copy)]
struct Descent {
    node: usize,
    u: f64,
    at_end: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn finds_proportionally_skips_zeros_and_batches_match_single_sets() {
        let w = [1.0, 0.0, 3.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0, 2.0];
        let mut t = WeightTree::with_room(3);
        t.rebuild(100, w.iter().copied());
        assert_eq!(t.total(), 10.0);
        let mut rng = Rng::new(1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[t.find(rng.next_f64() * t.total())] += 1;
        }
        for (c, x) in counts.iter().zip(w) {
            let expected = 10_000.0 * x;
            assert!(
                (*c as f64 - expected).abs() < 0.05 * expected + 1.0,
                "{counts:?}"
            );
        }
        assert_eq!(t.find(t.total()), 9); // rounding at the end lands on a positive weight
        let mut a = WeightTree::with_room(5000);
        let mut b = WeightTree::with_room(5000);
        let updates: Vec<(u32, f64)> = (0..700)
            .map(|i| ((i * 37 % 5000) as u32, i as f64 * 0.5))
            .collect();
        for &(s, x) in &updates {
            a.set(s as usize, x);
        }
        b.set_many(&updates);
        assert_eq!(a.levels, b.levels);
        // Lockstep descents give exactly the single ones, ragged last group and end included.
        let targets: Vec<f64> = (0..203)
            .map(|i| a.total() * i as f64 / 202.0)
            .chain([t.total()])
            .collect();
        let single: Vec<usize> = targets.iter().map(|&u| a.find(u)).collect();
        assert_eq!(a.find_many(&targets), single);
    }
}
