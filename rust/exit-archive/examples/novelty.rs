//! Times exact and IVF novelty: `cargo run --release --example novelty [n] [queries] [dim]`.
//! Data: unit vectors around 1000 centres (clustered like text embeddings).

use std::time::Instant;

use exit_archive::{Archive, Config, IvfIndex, Metric};

fn gaussian_like(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    let mut u = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32
    };
    // Sum of 4 uniforms: close enough to normal for test data.
    (0..n).map(|_| u() + u() + u() + u() - 2.0).collect()
}

fn clustered_unit(n: usize, dim: usize, seed: u64, spread: f32) -> Vec<f32> {
    let centres = gaussian_like(1000 * dim, 1);
    let jitter = gaussian_like(n * dim, seed);
    let mut v: Vec<f32> = (0..n * dim)
        .map(|i| centres[(i / dim % 1000) * dim + i % dim] + spread * jitter[i])
        .collect();
    for row in v.chunks_exact_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let n = *args.first().unwrap_or(&100_000);
    let nq = *args.get(1).unwrap_or(&4096);
    let dim = *args.get(2).unwrap_or(&384);
    let mut cfg = Config::new(n);
    cfg.embedding_dim = Some(dim);
    cfg.metric = Metric::L2;
    let mut a = Archive::new(cfg).unwrap();
    let rows = clustered_unit(n, dim, 2, 0.5);
    let payloads = vec![b"p".as_slice(); n];
    a.add(&payloads, &vec![0.5; n], None, Some(&rows), 0)
        .unwrap();
    let queries = clustered_unit(nq, dim, 3, 0.5);
    let t = Instant::now();
    let exact = a.novelty(&queries, 8).unwrap();
    let exact_ms = t.elapsed().as_secs_f64() * 1e3;
    let gflops = 2.0 * (n * nq * dim) as f64 / (exact_ms * 1e6);
    println!("n={n} q={nq} d={dim} exact: {exact_ms:.1} ms ({gflops:.0} GFLOP/s)");
    let t = Instant::now();
    let index = IvfIndex::build(&a, None, 0).unwrap();
    println!(
        "ivf build nlist={}: {:.1} ms",
        index.nlist(),
        t.elapsed().as_secs_f64() * 1e3
    );
    for nprobe in [4, 8, 16, 32, 64] {
        let t = Instant::now();
        let approx = index.novelty(&a, &queries, 8, nprobe).unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let recall = index.recall(&a, &queries, 8, nprobe).unwrap();
        let err: f32 = approx.iter().zip(&exact).map(|(x, y)| x - y).sum::<f32>() / nq as f32;
        println!(
            "  nprobe={nprobe:3}: {ms:7.1} ms ({:.1}x faster), recall@8 {recall:.3}, mean excess {err:.4}",
            exact_ms / ms
        );
    }
}
