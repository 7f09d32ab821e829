//! Runs the ExIt step workload (sample S, update S, insert C children with eviction, parents
//! the sampled ids) on a full archive and prints the median step time:
//! `cargo run --release --example exit_step -- N STEPS REPS MODE ADMISSION S C`, e.g.
//! `-- 1000000 100 1 softmax not_below_min` (defaults: 1e6, 30, 1, rank, always, 512, 4096;
//! the paper's math setting is `-- 512 300 1 softmax not_below_min 128 1024`).

use std::time::Instant;

/// CPU time of this thread in seconds: unlike wall time, it leaves out time the scheduler
/// gave to other processes (the benchmark machine is shared).
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

use exit_archive::{Admission, Archive, Config, Id, Prioritization};

fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    0.25 * (*state >> 11) as f64 / (1u64 << 53) as f64
}

fn main() {
    let reps: usize = std::env::args()
        .nth(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    for _ in 0..reps {
        run();
    }
}

fn run() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let steps: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let mut cfg = Config::new(n);
    cfg.staleness_coef = 0.1;
    let arg = |i: usize, default: &str| std::env::args().nth(i).unwrap_or(default.into());
    cfg.prioritization = Prioritization::parse(&arg(4, "rank")).unwrap();
    cfg.admission = Admission::parse(&arg(5, "always")).unwrap();
    let sample: usize = arg(6, "512").parse().unwrap();
    let child_count: usize = arg(7, "4096").parse().unwrap();
    let mut a = Archive::new(cfg).unwrap();
    let mut s = 1u64;
    let payload = [1u8; 16];
    let scores: Vec<f64> = (0..n).map(|_| lcg(&mut s)).collect();
    let t = Instant::now();
    a.add(&vec![&payload[..]; n], &scores, None, None, 0)
        .unwrap();
    eprintln!("fill {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let children: Vec<&[u8]> = vec![&payload[..]; child_count];
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut phases = [0.0f64; 3];
    let mut survivors = 0usize;
    for step in 1..=steps {
        let c0 = cpu_seconds();
        let t = Instant::now();
        let picked = a.sample(sample, step).unwrap();
        let t1 = Instant::now();
        let new_scores: Vec<f64> = (0..sample).map(|_| lcg(&mut s)).collect();
        a.update_scores(&picked, &new_scores).unwrap();
        let t2 = Instant::now();
        let child_scores: Vec<f64> = (0..child_count).map(|_| lcg(&mut s)).collect();
        let parents: Vec<Option<Id>> = picked
            .iter()
            .cycle()
            .take(child_count)
            .map(|&p| Some(p))
            .collect();
        let ids = a
            .add(&children, &child_scores, Some(&parents), None, step)
            .unwrap();
        let t3 = Instant::now();
        cpu_times.push((cpu_seconds() - c0) * 1e3);
        survivors += ids.iter().filter(|&&i| a.contains(i)).count();
        phases[0] += (t1 - t).as_secs_f64();
        phases[1] += (t2 - t1).as_secs_f64();
        phases[2] += (t3 - t2).as_secs_f64();
        times.push((t3 - t).as_secs_f64() * 1e3);
    }
    times.sort_by(|x, y| x.total_cmp(y));
    cpu_times.sort_by(|x, y| x.total_cmp(y));
    let per = |x: f64| x * 1e3 / steps as f64;
    println!(
        "n={n} median step {:.3} ms (cpu {:.3}, min {:.3}); mean sample {:.3} update {:.3} add {:.3} ms; {} survivors/step",
        times[times.len() / 2],
        cpu_times[cpu_times.len() / 2],
        times[0],
        per(phases[0]),
        per(phases[1]),
        per(phases[2]),
        survivors / steps as usize
    );
}
