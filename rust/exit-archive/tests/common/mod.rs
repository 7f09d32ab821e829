//! Helpers of the integration tests, and the sampling law written out plainly from its
//! definition, to check the archive's against.
#![allow(dead_code)]

use exit_archive::{Archive, Config, Id, Prioritization};

pub fn archive(capacity: usize) -> Archive {
    Archive::new(Config::new(capacity)).unwrap()
}

pub fn ids(raw: &[u64]) -> Vec<Id> {
    raw.iter().map(|&i| Id(i)).collect()
}

/// Adds one payload per score (its text), no parents.
pub fn add_scores(a: &mut Archive, scores: &[f64], step: u64) -> Vec<Id> {
    let payloads: Vec<Vec<u8>> = scores.iter().map(|s| s.to_string().into_bytes()).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    a.add(&refs, scores, None, None, step).unwrap()
}

/// `P = (1 − c)·P_S + c·P_C` over residents given as (id, score, last_step), by the
/// definitions: rank `h = (1/r)^(1/T)` with ties by smaller id; proportional
/// `h = score^(1/T)` (all zero: uniform), computed as `exp((ln s − ln max)/T)` so that the
/// reference itself neither overflows nor underflows; softmax `h = exp((s − max)/T)`;
/// staleness `P_C ∝ step − last_step`, uniform when that sum is 0.
pub fn expected_law(
    residents: &[(u64, f64, u64)],
    step: u64,
    mode: Prioritization,
    t: f64,
    c: f64,
) -> Vec<f64> {
    let n = residents.len();
    let top = residents
        .iter()
        .map(|r| r.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let h: Vec<f64> = match mode {
        Prioritization::Rank => {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&i, &j| {
                residents[j]
                    .1
                    .total_cmp(&residents[i].1)
                    .then(residents[i].0.cmp(&residents[j].0))
            });
            let mut h = vec![0.0; n];
            for (r, &i) in order.iter().enumerate() {
                h[i] = (1.0 / (r + 1) as f64).powf(1.0 / t);
            }
            h
        }
        Prioritization::Proportional if top == 0.0 => vec![1.0; n],
        Prioritization::Proportional => residents
            .iter()
            .map(|r| match r.1 {
                0.0 => 0.0,
                s => ((s.ln() - top.ln()) / t).exp(),
            })
            .collect(),
        Prioritization::Softmax => residents.iter().map(|r| ((r.1 - top) / t).exp()).collect(),
    };
    let total: f64 = h.iter().sum();
    let stale: Vec<f64> = residents.iter().map(|r| (step - r.2) as f64).collect();
    let stale_total: f64 = stale.iter().sum();
    (0..n)
        .map(|i| {
            let pc = if stale_total > 0.0 {
                stale[i] / stale_total
            } else {
                1.0 / n as f64
            };
            (1.0 - c) * h[i] / total + c * pc
        })
        .collect()
}

/// The archive's law against `expected_law` of its own residents.
pub fn assert_law(a: &Archive, step: u64) {
    let got = a.probabilities(step).unwrap();
    let ids: Vec<Id> = got.iter().map(|g| g.0).collect();
    let info = a.info(&ids).unwrap();
    let residents: Vec<(u64, f64, u64)> = ids
        .iter()
        .zip(&info)
        .map(|(id, e)| (id.0, e.score, e.last_step))
        .collect();
    let cfg = a.config();
    let want = expected_law(
        &residents,
        step,
        cfg.prioritization,
        cfg.temperature,
        cfg.staleness_coef,
    );
    for ((id, g), w) in got.iter().zip(&want) {
        // Weights more than e^-450 below the top's may read as 0 (see the crate docs).
        assert!(
            (g - w).abs() <= 1e-9 * w + 1e-180,
            "id {id}: {g} vs {w} ({cfg:?})"
        );
    }
}

/// Whether draw counts fit probabilities: Pearson's chi-square below its 99.9% quantile over
/// the entries of positive probability, and no draw of an entry of probability 0.
pub fn draws_fit(counts: &[u64], probs: &[f64]) -> bool {
    let total: u64 = counts.iter().sum();
    let mut stat = 0.0;
    let mut cells = 0;
    for (&c, &p) in counts.iter().zip(probs) {
        if p == 0.0 {
            if c > 0 {
                return false;
            }
            continue;
        }
        let e = p * total as f64;
        stat += (c as f64 - e).powi(2) / e;
        cells += 1;
    }
    cells < 2 || stat < chi_square_999(cells - 1)
}

/// The 99.9% quantile of chi-square with `df` degrees of freedom (Wilson–Hilferty).
pub fn chi_square_999(df: usize) -> f64 {
    let k = df as f64;
    let z = 3.0902; // standard normal 99.9%
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}
