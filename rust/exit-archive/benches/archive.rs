//! Criterion benches of the archive's hot paths: one ExIt step (sample 512, update 512, insert
//! 4096 with eviction), single small calls, and exact novelty.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use exit_archive::{Archive, Config, Id, Metric};

/// Deterministic pseudo-random learnability-like scores in [0, 0.25].
fn scores(n: usize, salt: u64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let x = (i ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
            0.25 * x as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn full_archive(n: usize, staleness: f64) -> Archive {
    let mut cfg = Config::new(n);
    cfg.staleness_coef = staleness;
    let mut a = Archive::new(cfg).unwrap();
    let payload = [7u8; 64];
    let payloads: Vec<&[u8]> = vec![&payload[..]; n];
    a.add(&payloads, &scores(n, 1), None, None, 0).unwrap();
    a
}

fn exit_step(c: &mut Criterion) {
    let payload = [3u8; 64];
    let children: Vec<&[u8]> = vec![&payload[..]; 4096];
    for n in [10_000usize, 100_000, 1_000_000] {
        let mut a = full_archive(n, 0.1);
        let mut step = 1u64;
        c.bench_function(&format!("exit_step/n={n}"), |b| {
            b.iter(|| {
                let picked = a.sample(512, step).unwrap();
                a.update_scores(&picked, &scores(512, step)).unwrap();
                let parents: Vec<Option<Id>> =
                    picked.iter().cycle().take(4096).map(|&p| Some(p)).collect();
                a.add(
                    &children,
                    &scores(4096, step + 7),
                    Some(&parents),
                    None,
                    step,
                )
                .unwrap();
                step += 1;
            })
        });
    }
}

fn small_calls(c: &mut Criterion) {
    let mut a = full_archive(100_000, 0.1);
    let mut step = 1u64;
    c.bench_function("sample_1/n=1e5", |b| {
        b.iter(|| {
            step += 1;
            black_box(a.sample(1, step).unwrap())
        })
    });
}

fn novelty(c: &mut Criterion) {
    let (n, d, q) = (10_000usize, 384usize, 256usize);
    let mut cfg = Config::new(n);
    cfg.embedding_dim = Some(d);
    cfg.metric = Metric::L2;
    let mut a = Archive::new(cfg).unwrap();
    let emb: Vec<f32> = (0..n * d)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let payloads: Vec<&[u8]> = vec![b"x".as_slice(); n];
    a.add(&payloads, &scores(n, 2), None, Some(&emb), 0)
        .unwrap();
    let queries = emb[..q * d].to_vec();
    c.bench_function("novelty_exact/n=1e4,q=256,d=384", |b| {
        b.iter_batched(
            || queries.clone(),
            |qs| black_box(a.novelty(&qs, 8).unwrap()),
            BatchSize::LargeInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = exit_step, small_calls, novelty
}
criterion_main!(benches);
