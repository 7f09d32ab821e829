//! Times snapshot save/load: `cargo run --release --example snapshot_io [n] [payload] [dim]`.

use std::time::Instant;

use exit_archive::{Archive, Config, Metric};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let n = *args.first().unwrap_or(&100_000);
    let payload = *args.get(1).unwrap_or(&1024);
    let dim = *args.get(2).unwrap_or(&384);
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
    for _ in 0..3 {
        let t = Instant::now();
        a.save(&path).unwrap();
        let save = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let b = Archive::load(&path).unwrap();
        let load = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let c = Archive::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        let from_bytes = t.elapsed().as_secs_f64() * 1e3;
        let size = std::fs::metadata(&path).unwrap().len() as f64 / 1e9;
        println!(
            "{n} entries, {size:.3} GB: save {save:.1} ms ({:.2} GB/s), load {load:.1} ms ({:.2} GB/s), read+from_bytes {from_bytes:.1} ms",
            size / save * 1e3,
            size / load * 1e3
        );
        assert_eq!(b.len(), c.len());
    }
    std::fs::remove_file(&path).ok();
}
