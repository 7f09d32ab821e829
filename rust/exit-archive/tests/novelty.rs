//! Exact k-NN (blocked GEMM scan) against brute force, and the IVF index's guarantees.

use exit_archive::{Archive, Config, IvfIndex, Metric};

/// Deterministic pseudo-random floats in [-1, 1) (splitmix64).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Points around `centers` cluster centres, like text embeddings.
fn clustered(n: usize, dim: usize, centers: usize, seed: u64) -> Vec<f32> {
    let c = noise(centers * dim, seed);
    let jitter = noise(n * dim, seed + 1);
    (0..n * dim)
        .map(|i| c[(i / dim % centers) * dim + i % dim] + 0.3 * jitter[i])
        .collect()
}

fn filled(n: usize, dim: usize, metric: Metric, rows: &[f32], capacity: usize) -> Archive {
    let mut cfg = Config::new(capacity);
    cfg.embedding_dim = Some(dim);
    cfg.metric = metric;
    let mut a = Archive::new(cfg).unwrap();
    let payloads: Vec<&[u8]> = vec![b"x".as_slice(); n];
    let scores: Vec<f64> = (0..n).map(|i| (i % 97) as f64).collect();
    a.add(&payloads, &scores, None, Some(rows), 0).unwrap();
    a
}

fn brute(rows: &[f32], q: &[f32], dim: usize, metric: Metric) -> Vec<f32> {
    let nq: f32 = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut d: Vec<f32> = rows
        .chunks_exact(dim)
        .map(|r| match metric {
            Metric::L2 => r
                .iter()
                .zip(q)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt(),
            Metric::Cosine => {
                let dot: f32 = r.iter().zip(q).map(|(a, b)| a * b).sum();
                1.0 - dot / (nq * r.iter().map(|x| x * x).sum::<f32>().sqrt())
            }
        })
        .collect();
    d.sort_by(f32::total_cmp);
    d
}

#[test]
fn exact_knn_crosses_blocks_and_matches_brute_force() {
    // More rows than one row block and more queries than one query block.
    let (n, dim, nq) = (2500, 24, 300);
    for metric in [Metric::L2, Metric::Cosine] {
        let rows = noise(n * dim, 7);
        let a = filled(n, dim, metric, &rows, n);
        let queries = noise(nq * dim, 8);
        for k in [1, 8, 3000] {
            let got = a.knn(&queries, k).unwrap();
            assert_eq!(got.k, k.min(n));
            let novelty = a.novelty(&queries, k).unwrap();
            for q in 0..nq {
                let want = brute(&rows, &queries[q * dim..(q + 1) * dim], dim, metric);
                let dist = &got.dist[q * got.k..(q + 1) * got.k];
                for j in 0..got.k {
                    assert!(
                        (dist[j] - want[j]).abs() < 1e-3,
                        "{metric:?} q{q} k{k} j{j}"
                    );
                }
                let mean: f32 = want[..got.k].iter().sum::<f32>() / got.k as f32;
                assert!((novelty[q] - mean).abs() < 1e-3);
                // The returned slots really are at those distances.
                let slot = got.slot[q * got.k] as usize;
                let d0 = brute(
                    &rows[slot * dim..(slot + 1) * dim],
                    &queries[q * dim..(q + 1) * dim],
                    dim,
                    metric,
                )[0];
                assert!((d0 - dist[0]).abs() < 1e-3);
            }
        }
    }
}

#[test]
fn ivf_exhaustive_probe_is_exact_and_partial_probe_is_an_upper_bound() {
    let (n, dim) = (3000, 16);
    for metric in [Metric::L2, Metric::Cosine] {
        let rows = clustered(n, dim, 40, 3);
        let a = filled(n, dim, metric, &rows, n);
        let index = IvfIndex::build(&a, Some(30), 1).unwrap();
        assert_eq!(index.len(), n);
        let queries = clustered(200, dim, 40, 9);
        let exact = a.novelty(&queries, 8).unwrap();
        assert_eq!(index.recall(&a, &queries, 8, 30).unwrap(), 1.0);
        let all = index.novelty(&a, &queries, 8, 30).unwrap();
        for (x, y) in all.iter().zip(&exact) {
            assert!((x - y).abs() < 1e-4);
        }
        // Fewer lists can only miss neighbours: distances never drop below exact.
        let few = index.novelty(&a, &queries, 8, 3).unwrap();
        for (x, y) in few.iter().zip(&exact) {
            assert!(*x >= y - 1e-4);
        }
        let recall = index.recall(&a, &queries, 8, 3).unwrap();
        assert!((0.0..=1.0).contains(&recall));
        assert!(
            recall > 0.5,
            "clustered data, 3 of 30 lists: recall {recall}"
        );
        // Probing more lists only adds candidates: recall never drops.
        let mut last = 0.0;
        for nprobe in [1, 3, 10, 30] {
            let r = index.recall(&a, &queries, 8, nprobe).unwrap();
            assert!(r >= last, "recall {r} at nprobe {nprobe} below {last}");
            last = r;
        }
    }
}

#[test]
fn ivf_follows_evictions_and_inserts() {
    let (cap, dim) = (1000, 8);
    let rows = clustered(cap, dim, 10, 5);
    let mut a = filled(cap, dim, Metric::L2, &rows, cap);
    let mut index = IvfIndex::build(&a, None, 0).unwrap();
    let queries = clustered(50, dim, 10, 6);
    assert!(index.search(&a, &queries, 4, 2).is_ok());
    // 400 new entries with high scores evict 400 old ones.
    let extra = clustered(400, dim, 10, 11);
    a.add(
        &vec![b"y".as_slice(); 400],
        &[1e6; 400],
        None,
        Some(&extra),
        1,
    )
    .unwrap();
    assert!(
        index.search(&a, &queries, 4, 2).is_err(),
        "stale index must refuse"
    );
    index.sync(&a).unwrap();
    assert_eq!(index.len(), a.len());
    let found = index.search(&a, &queries, 4, index.nlist()).unwrap();
    let exact = a.knn(&queries, 4).unwrap();
    assert_eq!(found.slot, exact.slot);
    for &s in &found.slot {
        assert!(a.id_at_slot(s).is_some());
    }
}

#[test]
fn ivf_rejects_bad_use() {
    let a = Archive::new(Config::new(10)).unwrap();
    assert!(IvfIndex::build(&a, None, 0).is_err()); // no embedding_dim
    let mut cfg = Config::new(10);
    cfg.embedding_dim = Some(2);
    let empty = Archive::new(cfg).unwrap();
    assert!(IvfIndex::build(&empty, None, 0).is_err());
    let full = filled(5, 2, Metric::L2, &noise(10, 1), 10);
    let index = IvfIndex::build(&full, Some(2), 0).unwrap();
    assert!(index.search(&full, &[0.0, 1.0], 2, 0).is_err());
    assert!(index.search(&full, &[0.0, 1.0, 2.0], 2, 1).is_err());
}
