//! Exact k-nearest-neighbour search as a blocked matrix-product scan.
//!
//! Distances come from dot products computed by `matrixmultiply::sgemm` on blocks of
//! `QUERY_BLOCK` queries × `ROW_BLOCK` rows (packed, cache-blocked, AVX2/FMA kernels picked at
//! run time), followed by a top-k pass over the block. Query blocks run in parallel on rayon.
//! matrixmultiply was chosen over faer/gemm for its small dependency tree and long record;
//! its single-threaded kernel is used inside our own parallel loop so threads never nest.
//!
//! Ranking keys avoid square roots and divisions by the query norm: for L2 the key is
//! ‖r‖² − 2·q·r (add ‖q‖² and take the root at the end), for cosine it is −q·r/‖r‖
//! (distance = 1 + key/‖q‖).

use rayon::prelude::*;

use crate::residents::sq_norm;

/// Distance between embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// 1 − cos(a, b).
    Cosine,
    /// Euclidean distance (not squared).
    L2,
}

pub(crate) const QUERY_BLOCK: usize = 128;
pub(crate) const ROW_BLOCK: usize = 1024;

/// The `k` nearest rows of each query: `dist[q * k + j]` ascending, `slot` the row index.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbors {
    /// Neighbours per query.
    pub k: usize,
    /// `dist[q * k + j]`: distance of query q's j-th nearest row, ascending in j.
    pub dist: Vec<f32>,
    /// The row (archive slot) of each distance.
    pub slot: Vec<u32>,
}

impl Neighbors {
    /// Joins per-block results (blocks of consecutive queries, in order).
    pub(crate) fn concat(k: usize, parts: Vec<Neighbors>) -> Neighbors {
        let mut out = Neighbors {
            k,
            dist: Vec::new(),
            slot: Vec::new(),
        };
        for p in parts {
            out.dist.extend(p.dist);
            out.slot.extend(p.slot);
        }
        out
    }

    /// Mean distance per query; +inf when there were no rows.
    pub fn mean_distance(&self, queries: usize) -> Vec<f32> {
        if self.k == 0 {
            return vec![f32::INFINITY; queries];
        }
        self.dist
            .chunks_exact(self.k)
            .map(|d| d.iter().sum::<f32>() / self.k as f32)
            .collect()
    }
}

/// Running top-k (smallest keys) of a set of queries, sorted ascending per query.
pub(crate) struct TopK {
    k: usize,
    keys: Vec<f32>,
    slots: Vec<u32>,
}

impl TopK {
    pub(crate) fn new(queries: usize, k: usize) -> Self {
        TopK {
            k,
            keys: vec![f32::INFINITY; queries * k],
            slots: vec![u32::MAX; queries * k],
        }
    }

    #[inline]
    fn worst(&self, q: usize) -> f32 {
        self.keys[q * self.k + self.k - 1]
    }

    #[inline]
    fn push(&mut self, q: usize, key: f32, slot: u32) {
        let base = q * self.k;
        let keys = &mut self.keys[base..base + self.k];
        let slots = &mut self.slots[base..base + self.k];
        // Ties keep the earlier row, so the result does not depend on block order.
        let mut j = self.k - 1;
        while j > 0 && (keys[j - 1] > key || (keys[j - 1] == key && slots[j - 1] > slot)) {
            keys[j] = keys[j - 1];
            slots[j] = slots[j - 1];
            j -= 1;
        }
        keys[j] = key;
        slots[j] = slot;
    }

    /// Scores `rows` (row-major, `slots[i]` naming row i) against `queries` and keeps the best.
    /// `query_index[i]` is the position of query i in this TopK.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn scan(
        &mut self,
        queries: &[f32],
        query_index: &[usize],
        rows: &[f32],
        row_sq_norms: &[f32],
        slots: &[u32],
        dim: usize,
        metric: Metric,
        dots: &mut Vec<f32>,
    ) {
        let (nq, nr) = (query_index.len(), slots.len());
        if nq == 0 || nr == 0 {
            return;
        }
        dots.resize(nq * nr, 0.0);
        // SAFETY: the slices hold nq*dim, nr*dim and nq*nr f32 with the strides given.
        unsafe {
            matrixmultiply::sgemm(
                nq,
                dim,
                nr,
                1.0,
                queries.as_ptr(),
                dim as isize,
                1,
                rows.as_ptr(),
                1,
                dim as isize,
                0.0,
                dots.as_mut_ptr(),
                nr as isize,
                1,
            );
        }
        // L2 ranks by ‖r‖² − 2·q·r: the squared norms serve as they are; cosine needs −1/‖r‖.
        let inverse_norms: Vec<f32>;
        let row_scale: &[f32] = match metric {
            Metric::L2 => row_sq_norms,
            Metric::Cosine => {
                inverse_norms = row_sq_norms.iter().map(|&n| -1.0 / n.sqrt()).collect();
                &inverse_norms
            }
        };
        for (i, &q) in query_index.iter().enumerate() {
            let d = &dots[i * nr..(i + 1) * nr];
            let mut worst = self.worst(q);
            for j in 0..nr {
                let key = match metric {
                    Metric::L2 => row_scale[j] - 2.0 * d[j],
                    Metric::Cosine => row_scale[j] * d[j],
                };
                if key <= worst {
                    self.push(q, key, slots[j]);
                    worst = self.worst(q);
                }
            }
        }
    }

    /// Turns keys into distances; `filled` is how many neighbours each query really has.
    pub(crate) fn finish(self, query_sq_norms: &[f32], filled: usize, metric: Metric) -> Neighbors {
        let mut dist = Vec::with_capacity(query_sq_norms.len() * filled);
        let mut slot = Vec::with_capacity(query_sq_norms.len() * filled);
        for (q, &qn) in query_sq_norms.iter().enumerate() {
            for j in 0..filled {
                let key = self.keys[q * self.k + j];
                dist.push(match metric {
                    Metric::L2 => (qn + key).max(0.0).sqrt(),
                    Metric::Cosine => (1.0 + key / qn.sqrt()).max(0.0),
                });
                slot.push(self.slots[q * self.k + j]);
            }
        }
        Neighbors {
            k: filled,
            dist,
            slot,
        }
    }
}

/// Runs `f` over blocks on rayon's pool, or on the calling thread when there is one block or
/// the pool has one thread (so callers on several threads still run in parallel).
pub(crate) fn map_blocks<T: Send>(blocks: &[&[f32]], f: impl Fn(&[f32]) -> T + Sync) -> Vec<T> {
    if blocks.len() <= 1 || rayon::current_num_threads() <= 1 {
        blocks.iter().map(|b| f(b)).collect()
    } else {
        blocks.par_iter().map(|b| f(b)).collect()
    }
}

pub(crate) fn sq_norms(vectors: &[f32], dim: usize) -> Vec<f32> {
    vectors.chunks_exact(dim).map(sq_norm).collect()
}

/// Exact `min(k, n)` nearest rows of every query (rows and queries row-major, `dim` wide).
pub fn knn(
    rows: &[f32],
    row_sq_norms: &[f32],
    dim: usize,
    queries: &[f32],
    k: usize,
    metric: Metric,
) -> Neighbors {
    let n = row_sq_norms.len();
    let nq = queries.len() / dim.max(1);
    let filled = k.min(n);
    if filled == 0 || nq == 0 {
        return Neighbors {
            k: 0,
            dist: Vec::new(),
            slot: Vec::new(),
        };
    }
    let query_blocks: Vec<&[f32]> = queries.chunks(QUERY_BLOCK * dim).collect();
    let parts: Vec<Neighbors> = map_blocks(&query_blocks, |block| {
        let bq = block.len() / dim;
        let mut top = TopK::new(bq, filled);
        let index: Vec<usize> = (0..bq).collect();
        let mut dots = Vec::new();
        let mut slots: Vec<u32> = Vec::with_capacity(ROW_BLOCK);
        for start in (0..n).step_by(ROW_BLOCK) {
            let end = (start + ROW_BLOCK).min(n);
            slots.clear();
            slots.extend(start as u32..end as u32);
            top.scan(
                block,
                &index,
                &rows[start * dim..end * dim],
                &row_sq_norms[start..end],
                &slots,
                dim,
                metric,
                &mut dots,
            );
        }
        top.finish(&sq_norms(block, dim), filled, metric)
    });
    Neighbors::concat(filled, parts)
}
