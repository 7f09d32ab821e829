//! Sorting batch entries by score: a bucket sort on the score values (one counting pass into
//! about one bucket per entry, then insertion sort within buckets), several times faster than
//! a comparison sort for the 10²–10⁴ entries of a batch; skewed or huge spreads fall back to
//! sorting within large buckets.

use super::ascending_bits;

/// `items` (distinct u32 tags, e.g. batch positions) in ascending (score, tag) order, where
/// `score(tag)` is finite.
pub(crate) fn by_score(items: &[u32], score: impl Fn(u32) -> f64) -> Vec<u32> {
    let n = items.len();
    let mut keyed: Vec<(u64, u32)> = items
        .iter()
        .map(|&t| (ascending_bits(score(t)), t))
        .collect();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &t in items {
        let s = score(t);
        lo = lo.min(s);
        hi = hi.max(s);
    }
    let spread = hi - lo;
    if n < 64 || !(spread > 0.0 && spread.is_finite()) {
        keyed.sort_unstable();
        return keyed.into_iter().map(|e| e.1).collect();
    }
    // One bucket per entry on average; a bucket's index is monotone in the score.
    let scale = (n as f64 - 0.5) / spread;
    let buckets: Vec<u32> = items
        .iter()
        .map(|&t| (((score(t) - lo) * scale) as u32).min(n as u32 - 1))
        .collect();
    let mut starts = vec![0u32; n + 1];
    for &b in &buckets {
        starts[b as usize + 1] += 1;
    }
    for b in 0..n {
        starts[b + 1] += starts[b];
    }
    let mut out = vec![(0u64, 0u32); n];
    let mut fill = starts.clone();
    for (&b, &e) in buckets.iter().zip(&keyed) {
        let f = &mut fill[b as usize];
        out[*f as usize] = e;
        *f += 1;
    }
    for b in 0..n {
        let part = &mut out[starts[b] as usize..starts[b + 1] as usize];
        if part.len() <= 16 {
            for i in 1..part.len() {
                let x = part[i];
                let mut j = i;
                while j > 0 && part[j - 1] > x {
                    part[j] = part[j - 1];
                    j -= 1;
                }
                part[j] = x;
            }
        } else {
            part.sort_unstable();
        }
    }
    out.into_iter().map(|e| e.1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn matches_a_comparison_sort() {
        let mut rng = Rng::new(9);
        for case in 0..200 {
            let n = rng.below(3000) as usize;
            let scores: Vec<f64> = (0..n)
                .map(|_| match case % 4 {
                    0 => rng.next_f64(),
                    1 => (rng.below(5) as f64) - 2.0, // ties
                    2 => (rng.next_f64() * 50.0).exp() * if rng.below(2) == 0 { -1.0 } else { 1.0 },
                    _ => [f64::MAX, -f64::MAX, 0.0, -0.0][rng.below(4) as usize],
                })
                .collect();
            let items: Vec<u32> = (0..n as u32).rev().collect();
            let got = by_score(&items, |t| scores[t as usize]);
            let mut want = items.clone();
            want.sort_unstable_by_key(|&t| (ascending_bits(scores[t as usize]), t));
            assert_eq!(got, want, "case {case}");
        }
    }
}

/// Sort timings in CPU time (`cargo test --release -- --ignored --nocapture time_sort`).
#[cfg(all(test, target_os = "linux"))]
mod timing {
    use super::*;
    use crate::rng::Rng;

    fn cpu() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    }

    #[test]
    #[ignore]
    fn time_sort() {
        let mut rng = Rng::new(1);
        for n in [100usize, 1000, 4096] {
            let scores: Vec<f64> = (0..n).map(|_| rng.next_f64() * 0.25).collect();
            let items: Vec<u32> = (0..n as u32).collect();
            let t = cpu();
            let reps = 2000;
            for _ in 0..reps {
                std::hint::black_box(by_score(&items, |i| scores[i as usize]));
            }
            let a = (cpu() - t) / reps as f64 * 1e6;
            let t = cpu();
            for _ in 0..reps {
                let mut v: Vec<(u64, u32)> = items
                    .iter()
                    .map(|&i| (ascending_bits(scores[i as usize]), i))
                    .collect();
                v.sort_unstable();
                std::hint::black_box(v);
            }
            let b = (cpu() - t) / reps as f64 * 1e6;
            println!("n={n}: bucket {a:.1} us, sort_unstable {b:.1} us");
        }
    }
}
