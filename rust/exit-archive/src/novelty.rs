//! PLACEHOLDER brute force; replaced by the blocked GEMM implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Cosine,
    L2,
}

pub fn knn_mean_distance(
    rows: &[f32],
    row_sq_norms: &[f32],
    dim: usize,
    queries: &[f32],
    k: usize,
    metric: Metric,
) -> Vec<f32> {
    let n = row_sq_norms.len();
    queries
        .chunks_exact(dim)
        .map(|q| {
            if n == 0 {
                return f32::INFINITY;
            }
            let qn: f32 = q.iter().map(|x| x * x).sum();
            let mut d: Vec<f32> = rows
                .chunks_exact(dim)
                .zip(row_sq_norms)
                .map(|(r, &rn)| {
                    let dot: f32 = r.iter().zip(q).map(|(a, b)| a * b).sum();
                    match metric {
                        Metric::Cosine => 1.0 - dot / (qn.sqrt() * rn.sqrt()),
                        Metric::L2 => (qn + rn - 2.0 * dot).max(0.0).sqrt(),
                    }
                })
                .collect();
            d.sort_by(|a, b| a.total_cmp(b));
            let k = k.min(n);
            d[..k].iter().sum::<f32>() / k as f32
        })
        .collect()
}
