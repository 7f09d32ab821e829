//! Times snapshot save/load and prints medians:
//! `cargo run --release --example snapshot_io -- [n] [payload] [dim] [reps]`
//! (defaults 1e5 entries, 1 KiB payloads, d = 384, 7 repetitions; page cache warm).

use std::time::Instant;

use exit_archive::{Archive, Config, Metric};

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let n = *args.first().unwrap_or(&100_000);
    let payload = *args.get(1).unwrap_or(&1024);
    let dim = *args.get(2).unwrap_or(&384);
    let reps = *args.get(3).unwrap_or(&7);
    let mut cfg = Config::new(n);
    cfg.embedding_dim = Some(dim);
    cfg.metric = Metric::L2;
    let mut a = Archive::new(cfg).unwrap();
    let bytes = vec![7u8; payload];
    let payloads = vec![bytes.as_slice(); n];
    let emb: Vec<f32> = (0..n * dim).map(|i| (i % 97) as f32 * 0.01).collect();
    let scores: Vec<f64> = (0..n).map(|i| (i % 1000) as f64).collect();
    a.add(&payloads, &scores, None, Some(&emb), 0).unwrap();
    let path = std::env::temp_dir().join("exit_archive_snapshot_io.snap");
    let save = median_ms(reps, || a.save(&path).unwrap());
    let size = std::fs::metadata(&path).unwrap().len() as f64 / 1e9;
    let load = median_ms(reps, || assert_eq!(Archive::load(&path).unwrap().len(), n));
    let bytes = std::fs::read(&path).unwrap();
    let from_bytes = median_ms(reps, || {
        assert_eq!(Archive::from_bytes(&bytes).unwrap().len(), n)
    });
    println!(
        "{n} entries, {size:.3} GB, median of {reps}: save {save:.1} ms ({:.2} GB/s), \
         load {load:.1} ms ({:.2} GB/s), from_bytes (file already in memory) {from_bytes:.1} ms",
        size / save * 1e3,
        size / load * 1e3
    );
    std::fs::remove_file(&path).ok();
}
