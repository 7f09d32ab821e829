//! Optional approximate novelty: an inverted-file (IVF-flat) index beside an [`Archive`].
//!
//! k-means centroids partition the embeddings into `nlist` lists; a query scans only the lists
//! of its `nprobe` nearest centroids, with the same blocked matrix-product scan as the exact
//! search. The index stores ids, not vectors (the archive already holds them), so it costs
//! 8 bytes per entry. Ids are never reused and embeddings never change, so keeping up with the
//! archive is cheap: [`IvfIndex::sync`] assigns ids inserted since the last sync and drops
//! evicted ones; it retrains when the archive has grown or shrunk 4x since training.
//! [`IvfIndex::recall`] reports recall@k against the exact search on given queries.

use rayon::prelude::*;

use crate::archive::Archive;
use crate::error::{invalid, Result};
use crate::id::Id;
use crate::novelty::{knn, map_blocks, sq_norms, Metric, Neighbors, TopK, QUERY_BLOCK};
use crate::rng::Rng;
use crate::validate;

const KMEANS_ITERS: usize = 6;
const TRAIN_POINTS_PER_LIST: usize = 32;

/// An inverted-file index over an archive's embeddings (see the module docs).
#[derive(Clone, Debug)]
pub struct IvfIndex {
    dim: usize,
    metric: Metric,
    nlist: usize,
    centroids: Vec<f32>,
    centroid_norms: Vec<f32>,
    lists: Vec<Vec<u64>>,
    /// Ids below this have been assigned to a list (or were gone when we looked).
    synced_to: u64,
    trained_on: usize,
    seed: u64,
}

/// Default number of lists for `n` vectors: about 4·√n.
pub fn default_nlist(n: usize) -> usize {
    ((4.0 * (n as f64).sqrt()).round() as usize).clamp(1, n.max(1))
}

impl IvfIndex {
    /// Trains centroids on the archive's embeddings and assigns every resident id.
    /// `nlist = None` picks [`default_nlist`].
    pub fn build(archive: &Archive, nlist: Option<usize>, seed: u64) -> Result<Self> {
        let Some(dim) = archive.config().embedding_dim else {
            return invalid("an approximate index needs an archive created with embedding_dim");
        };
        let n = archive.len();
        if n == 0 {
            return invalid("cannot build an approximate index over an empty archive");
        }
        let nlist = nlist.unwrap_or_else(|| default_nlist(n));
        if nlist == 0 {
            return invalid("nlist must be >= 1");
        }
        let nlist = nlist.min(n);
        let metric = archive.config().metric;
        let centroids = train(archive, dim, nlist, metric, seed);
        let mut index = IvfIndex {
            dim,
            metric,
            nlist,
            centroid_norms: sq_norms(&centroids, dim),
            centroids,
            lists: vec![Vec::new(); nlist],
            synced_to: 0,
            trained_on: n,
            seed,
        };
        index.sync(archive)?;
        Ok(index)
    }

    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.nlist
    }

    /// Number of ids currently assigned to lists.
    pub fn len(&self) -> usize {
        self.lists.iter().map(Vec::len).sum()
    }

    /// Whether no id is assigned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Catches up with the archive: assigns new ids, drops evicted ones, retrains when the
    /// archive's size moved by 4x since training.
    pub fn sync(&mut self, archive: &Archive) -> Result<()> {
        let cfg = archive.config();
        if cfg.embedding_dim != Some(self.dim) || cfg.metric != self.metric {
            return invalid("this index was built for a different archive");
        }
        let n = archive.len();
        if n > 0 && (n > 4 * self.trained_on || 4 * n < self.trained_on) {
            *self = IvfIndex::build(archive, None, self.seed)?;
            return Ok(());
        }
        let resident = |id: &u64| archive.contains(Id(*id));
        self.lists.par_iter_mut().for_each(|l| l.retain(resident));
        // Ids inserted since the last sync that are resident: walk that id range, or the
        // residents when the range is longer (a first sync after a long run).
        let since = self.synced_to;
        let next_id = archive.next_id().0;
        let new_ids: Vec<u64> = if next_id - since > n as u64 {
            archive
                .ids()
                .into_iter()
                .filter(|&id| id.0 >= since)
                .map(|id| id.0)
                .collect()
        } else {
            (since..next_id).filter(|id| resident(id)).collect()
        };
        self.synced_to = next_id;
        if new_ids.is_empty() {
            return Ok(());
        }
        let rows = gather(archive, &new_ids, self.dim);
        let nearest = knn(
            &self.centroids,
            &self.centroid_norms,
            self.dim,
            &rows,
            1,
            self.metric,
        );
        for (&id, &list) in new_ids.iter().zip(&nearest.slot) {
            self.lists[list as usize].push(id);
        }
        Ok(())
    }

    fn check(&self, archive: &Archive) -> Result<()> {
        if self.synced_to != archive.next_id().0 {
            return invalid("the index is behind the archive; call sync first");
        }
        Ok(())
    }

    /// Approximate `min(k, n)` nearest residents of each query, scanning `nprobe` lists.
    /// Slots in the result are archive slots, as in the exact search.
    pub fn search(
        &self,
        archive: &Archive,
        queries: &[f32],
        k: usize,
        nprobe: usize,
    ) -> Result<Neighbors> {
        let dim = validate::queries(archive.config(), queries, k)?;
        self.check(archive)?;
        if nprobe == 0 {
            return invalid("nprobe must be >= 1");
        }
        let filled = k.min(archive.len());
        let nprobe = nprobe.min(self.nlist);
        // One block per thread: a block gathers each list it probes into one buffer, so
        // fewer, larger blocks gather each list fewer times.
        let nq = queries.len() / dim;
        let per_block = nq
            .div_ceil(rayon::current_num_threads().max(1))
            .max(QUERY_BLOCK);
        let blocks: Vec<&[f32]> = queries.chunks(per_block * dim).collect();
        let parts: Vec<Neighbors> = map_blocks(&blocks, |block| {
            self.search_block(archive, block, filled, nprobe)
        });
        Ok(Neighbors::concat(filled, parts))
    }

    fn search_block(&self, archive: &Archive, block: &[f32], k: usize, nprobe: usize) -> Neighbors {
        let dim = self.dim;
        let nq = block.len() / dim;
        let probes = knn(
            &self.centroids,
            &self.centroid_norms,
            dim,
            block,
            nprobe,
            self.metric,
        );
        let mut by_list: Vec<Vec<usize>> = vec![Vec::new(); self.nlist];
        for q in 0..nq {
            for &list in &probes.slot[q * probes.k..(q + 1) * probes.k] {
                by_list[list as usize].push(q);
            }
        }
        let mut top = TopK::new(nq, k.max(1));
        let (mut qbuf, mut rbuf, mut rnorm, mut slots, mut dots) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (list, queries) in by_list.iter().enumerate() {
            if queries.is_empty() || self.lists[list].is_empty() {
                continue;
            }
            qbuf.clear();
            for &q in queries {
                qbuf.extend_from_slice(&block[q * dim..(q + 1) * dim]);
            }
            rbuf.clear();
            rnorm.clear();
            slots.clear();
            let (rows, norms) = archive.embedding_rows();
            for &id in &self.lists[list] {
                let s = archive.slot_of(id).expect("synced ids are resident");
                rbuf.extend_from_slice(&rows[s * dim..(s + 1) * dim]);
                rnorm.push(norms[s]);
                slots.push(s as u32);
            }
            top.scan(
                &qbuf,
                queries,
                &rbuf,
                &rnorm,
                &slots,
                dim,
                self.metric,
                &mut dots,
            );
        }
        top.finish(&sq_norms(block, dim), k, self.metric)
    }

    /// Mean distance to the approximate nearest neighbours; +inf for an empty archive.
    pub fn novelty(
        &self,
        archive: &Archive,
        queries: &[f32],
        k: usize,
        nprobe: usize,
    ) -> Result<Vec<f32>> {
        let nq = queries.len() / self.dim;
        Ok(self.search(archive, queries, k, nprobe)?.mean_distance(nq))
    }

    /// Recall@k of [`IvfIndex::search`] against the exact search on these queries: the
    /// fraction of true k nearest residents that the approximate search also returned.
    pub fn recall(
        &self,
        archive: &Archive,
        queries: &[f32],
        k: usize,
        nprobe: usize,
    ) -> Result<f64> {
        let approx = self.search(archive, queries, k, nprobe)?;
        let exact = archive.knn(queries, k)?;
        if exact.k == 0 {
            return Ok(1.0);
        }
        let hits: usize = exact
            .slot
            .chunks_exact(exact.k)
            .zip(approx.slot.chunks_exact(approx.k))
            .map(|(e, a)| e.iter().filter(|s| a.contains(s)).count())
            .sum();
        Ok(hits as f64 / exact.slot.len() as f64)
    }
}

fn gather(archive: &Archive, ids: &[u64], dim: usize) -> Vec<f32> {
    let (all, _) = archive.embedding_rows();
    let mut rows = Vec::with_capacity(ids.len() * dim);
    for &id in ids {
        let s = archive.slot_of(id).expect("resident");
        rows.extend_from_slice(&all[s * dim..(s + 1) * dim]);
    }
    rows
}

/// Lloyd's k-means on a seeded sample of the residents; cosine uses spherical means.
fn train(archive: &Archive, dim: usize, nlist: usize, metric: Metric, seed: u64) -> Vec<f32> {
    let n = archive.len();
    let mut rng = Rng::new(seed);
    let want = (nlist * TRAIN_POINTS_PER_LIST).min(n);
    // Partial Fisher-Yates: a uniform sample of `want` distinct slots.
    let mut pool: Vec<u32> = (0..n as u32).collect();
    for i in 0..want {
        let j = i + rng.below((n - i) as u64) as usize;
        pool.swap(i, j);
    }
    let sample_slots = &pool[..want];
    let (rows, _) = archive.embedding_rows();
    let mut points = Vec::with_capacity(want * dim);
    for &s in sample_slots {
        let s = s as usize;
        points.extend_from_slice(&rows[s * dim..(s + 1) * dim]);
    }
    let mut centroids = points[..nlist * dim].to_vec();
    for _ in 0..KMEANS_ITERS {
        let norms = sq_norms(&centroids, dim);
        let assign = knn(&centroids, &norms, dim, &points, 1, metric);
        let mut sums = vec![0f64; nlist * dim];
        let mut counts = vec![0usize; nlist];
        for (p, &c) in assign.slot.iter().enumerate() {
            let c = c as usize;
            counts[c] += 1;
            for (acc, &x) in sums[c * dim..(c + 1) * dim]
                .iter_mut()
                .zip(&points[p * dim..(p + 1) * dim])
            {
                *acc += x as f64;
            }
        }
        for c in 0..nlist {
            let centroid = &mut centroids[c * dim..(c + 1) * dim];
            if counts[c] == 0 {
                // An empty list restarts at a random sample point.
                let p = rng.below(want as u64) as usize;
                centroid.copy_from_slice(&points[p * dim..(p + 1) * dim]);
                continue;
            }
            for (x, &s) in centroid.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                *x = (s / counts[c] as f64) as f32;
            }
            if metric == Metric::Cosine {
                let norm = centroid.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm > 0.0 {
                    centroid.iter_mut().for_each(|x| *x /= norm);
                }
            }
        }
    }
    // A cosine centroid could end up zero (opposite points); give it a sample point instead.
    if metric == Metric::Cosine {
        for c in 0..nlist {
            if centroids[c * dim..(c + 1) * dim].iter().all(|&x| x == 0.0) {
                centroids[c * dim..(c + 1) * dim].copy_from_slice(&points[c * dim..(c + 1) * dim]);
            }
        }
    }
    centroids
}
