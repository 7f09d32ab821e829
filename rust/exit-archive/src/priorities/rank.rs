//! The distribution over ranks of the rank mode: `h(r) = r^(−1/temperature)` (1-based),
//! cumulated once and grown with the archive (it depends on n only through its length).
//! A draw is an inverse-CDF search: first over every 64th cumulative value (a table small
//! enough to stay in cache), then within one block of 64.

const BLOCK: usize = 64;

#[derive(Clone, Debug, Default)]
pub(crate) struct RankTable {
    inv_t: f64,
    /// `cdf[r]` = Σ h over ranks 1..=r+1.
    cdf: Vec<f64>,
    /// `coarse[b]` = `cdf[64b + 63]`, for complete blocks.
    coarse: Vec<f64>,
}

impl RankTable {
    pub(crate) fn new(temperature: f64) -> Self {
        RankTable {
            inv_t: 1.0 / temperature,
            cdf: Vec::new(),
            coarse: Vec::new(),
        }
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        (self.cdf.capacity() + self.coarse.capacity()) * 8
    }

    /// Makes sure ranks 0..n are tabulated.
    pub(crate) fn grow(&mut self, n: usize) {
        if n <= self.cdf.len() {
            return;
        }
        let more = n - self.cdf.len();
        crate::huge::reserve(&mut self.cdf, more);
        let mut acc = self.cdf.last().copied().unwrap_or(0.0);
        for r in self.cdf.len()..n {
            acc += self.weight(r);
            self.cdf.push(acc);
            if r % BLOCK == BLOCK - 1 {
                self.coarse.push(acc);
            }
        }
    }

    /// h of the 0-based rank `r`.
    #[inline]
    pub(crate) fn weight(&self, r: usize) -> f64 {
        if self.inv_t == 1.0 {
            1.0 / (r + 1) as f64
        } else {
            ((r + 1) as f64).powf(-self.inv_t)
        }
    }

    /// Σ h over the first `n` ranks (tabulated).
    pub(crate) fn total(&self, n: usize) -> f64 {
        self.cdf[n - 1]
    }

    /// The 0-based rank whose cumulative interval holds `u · total(n)`, for u in [0, 1).
    pub(crate) fn draw(&self, u: f64, n: usize) -> usize {
        let target = u * self.cdf[n - 1];
        let full_blocks = (n / BLOCK).min(self.coarse.len());
        let block = self.coarse[..full_blocks].partition_point(|&c| c <= target);
        let start = block * BLOCK;
        let end = (start + BLOCK).min(n);
        (start + self.cdf[start..end].partition_point(|&c| c <= target)).min(n - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_invert_the_cumulative_weights() {
        let mut t = RankTable::new(0.7);
        t.grow(100);
        t.grow(1000);
        let n = 777;
        let total = t.total(n);
        let mut acc = 0.0;
        for r in 0..n {
            let lo = acc / total;
            acc += t.weight(r);
            let hi = acc / total;
            // Just inside each interval maps to its rank.
            assert_eq!(t.draw(lo + (hi - lo) * 0.5, n), r);
        }
        assert_eq!(t.draw(0.0, n), 0);
        assert_eq!(t.draw(1.0 - f64::EPSILON, n), n - 1);
    }
}
