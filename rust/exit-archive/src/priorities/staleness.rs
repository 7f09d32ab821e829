//! Staleness sampling: a 64-ary tree of exact integer sums (and maxima) of last_step over the
//! dense resident slots. A node's resident count is implicit (slots 0..n are resident), so
//! its staleness weight at any `step` is `step · count − sum`, exact in integers; a draw walks
//! down the tree and scans one block of 64 slots. Updating a slot adds a difference to one
//! entry per level (a few cache lines, the lowest level small enough for L2).

const SHIFT: u32 = 6;
const ARITY: usize = 1 << SHIFT;

#[derive(Clone, Debug, Default)]
pub(crate) struct StalenessTree {
    /// `sums[k][j]`: sum of last_step over slots `[j·64^(k+1), (j+1)·64^(k+1))`.
    sums: Vec<Vec<u128>>,
    /// `maxes[k][j]`: the largest last_step there (0 when none).
    maxes: Vec<Vec<u64>>,
}

impl StalenessTree {
    /// Builds for `room` slots from the last_steps of resident slots 0..n.
    pub(crate) fn build(room: usize, last: &[u64]) -> Self {
        let mut sums = vec![crate::huge::zeroed::<u128>(room.max(1).div_ceil(ARITY))];
        let mut maxes = vec![vec![0u64; sums[0].len()]];
        for (s, &v) in last.iter().enumerate() {
            sums[0][s >> SHIFT] += v as u128;
            let m = &mut maxes[0][s >> SHIFT];
            *m = (*m).max(v);
        }
        while sums.last().expect("a level").len() > 1 {
            let below = sums.len() - 1;
            let len = sums[below].len().div_ceil(ARITY);
            let mut s = vec![0u128; len];
            let mut m = vec![0u64; len];
            for j in 0..sums[below].len() {
                s[j >> SHIFT] += sums[below][j];
                m[j >> SHIFT] = m[j >> SHIFT].max(maxes[below][j]);
            }
            sums.push(s);
            maxes.push(m);
        }
        StalenessTree { sums, maxes }
    }

    /// Slots this tree has room for.
    pub(crate) fn room(&self) -> usize {
        self.sums[0].len() << SHIFT
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.sums.iter().map(|l| l.capacity() * 24).sum()
    }

    /// Sum of last_step over all residents.
    pub(crate) fn sum(&self) -> u128 {
        self.sums.last().map_or(0, |root| root[0])
    }

    /// The largest last_step among residents (0 when empty).
    pub(crate) fn max(&self) -> u64 {
        self.maxes.last().map_or(0, |root| root[0])
    }

    /// Σ (step − last_step) over the `n` residents; `step` >= every last_step.
    pub(crate) fn total(&self, step: u64, n: usize) -> u128 {
        step as u128 * n as u128 - self.sum()
    }

    /// Slot `slot` changed its last_step from `old` to `new`; `last` already holds the new
    /// values of resident slots 0..n (a slot that left holds nothing: pass `new` = 0 after
    /// shrinking `last`).
    pub(crate) fn update(&mut self, slot: usize, old: u64, new: u64, last: &[u64]) {
        let mut j = slot;
        for level in &mut self.sums {
            j >>= SHIFT;
            level[j] = level[j] + new as u128 - old as u128;
        }
        if new > old {
            let mut j = slot;
            for level in &mut self.maxes {
                j >>= SHIFT;
                if level[j] >= new {
                    break;
                }
                level[j] = new;
            }
        } else if new < old {
            self.lower_max(slot, old, last);
        }
    }

    /// Recomputes the maxima above `slot` after a value `old` left it.
    fn lower_max(&mut self, slot: usize, old: u64, last: &[u64]) {
        let block = slot >> SHIFT;
        if self.maxes[0][block] != old {
            return;
        }
        let start = block << SHIFT;
        let end = (start + ARITY).min(last.len());
        let mut m = last
            .get(start..end)
            .map_or(0, |b| b.iter().copied().max().unwrap_or(0));
        self.maxes[0][block] = m;
        let mut j = block;
        for k in 1..self.maxes.len() {
            j >>= SHIFT;
            if self.maxes[k][j] != old || m == old {
                return;
            }
            let children = &self.maxes[k - 1];
            let start = j << SHIFT;
            let end = (start + ARITY).min(children.len());
            m = children[start..end].iter().copied().max().unwrap_or(0);
            self.maxes[k][j] = m;
        }
    }

    /// The slot holding cumulative staleness position `target` (< `total(step, n)`).
    pub(crate) fn find(&self, step: u64, n: usize, mut target: u128, last: &[u64]) -> usize {
        let mut j = 0;
        for k in (0..self.sums.len() - 1).rev() {
            let span = 1usize << (SHIFT * (k as u32 + 1));
            let start = j << SHIFT;
            let end = (start + ARITY).min(self.sums[k].len());
            let mut chosen = end - 1;
            for c in start..end {
                let count = n.saturating_sub(c * span).min(span);
                let w = step as u128 * count as u128 - self.sums[k][c];
                if target < w {
                    chosen = c;
                    break;
                }
                target -= w;
            }
            j = chosen;
        }
        let start = j << SHIFT;
        let end = (start + ARITY).min(n);
        for (s, &v) in last[start..end].iter().enumerate() {
            let w = (step - v) as u128;
            if target < w {
                return start + s;
            }
            target -= w;
        }
        unreachable!("staleness target beyond the total")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_matches_a_linear_scan_and_maxima_follow_updates() {
        let mut last: Vec<u64> = (0..5000u64).map(|i| (i * 7919) % 37).collect();
        let mut t = StalenessTree::build(9000, &last);
        let step = 40;
        for (slot, new) in [(3usize, 39u64), (4097, 0), (4999, 38)] {
            let old = last[slot];
            last[slot] = new;
            t.update(slot, old, new, &last);
        }
        assert_eq!(t.max(), 39);
        let expected: Vec<usize> = (0..last.len())
            .flat_map(|s| std::iter::repeat_n(s, (step - last[s]) as usize))
            .collect();
        assert_eq!(t.total(step, last.len()) as usize, expected.len());
        for target in (0..expected.len()).step_by(17) {
            assert_eq!(
                t.find(step, last.len(), target as u128, &last),
                expected[target]
            );
        }
        // The maximum leaves: the tree finds the next one.
        let old = last[3];
        last[3] = 1;
        t.update(3, old, 1, &last);
        assert_eq!(t.max(), 38);
        // The last resident leaves the dense range.
        let gone = last.pop().unwrap();
        t.update(last.len(), gone, 0, &last);
        assert_eq!(t.max(), 36);
        assert_eq!(t.sum(), last.iter().map(|&v| v as u128).sum::<u128>());
    }
}
