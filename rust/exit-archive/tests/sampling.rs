//! The sampling law: `probabilities` against the formulas written out in `common`, draws
//! against `probabilities` (chi-square), the bookkeeping of a draw, and determinism.

mod common;

use common::{add_scores, archive, assert_law, draws_fit, ids};
use exit_archive::{Archive, Config, Id, Prioritization};

const MODES: [Prioritization; 3] = [
    Prioritization::Rank,
    Prioritization::Proportional,
    Prioritization::Softmax,
];

/// Draw counts of one `sample` call, by resident (ids ascending).
fn counts(a: &mut Archive, draws: usize, step: u64) -> Vec<u64> {
    let residents = a.ids();
    let mut counts = vec![0u64; residents.len()];
    for id in a.sample(draws, step).unwrap() {
        counts[residents.binary_search(&id).unwrap()] += 1;
    }
    counts
}

/// Every mode × temperature × staleness mix, on scores with ties added at different steps:
/// the reported law is the formula, and one call's i.i.d. draws follow it.
#[test]
fn draws_follow_the_formula_in_every_mode() {
    for mode in MODES {
        for t in [1.0, 0.3, 2.5] {
            for c in [0.0, 0.4, 1.0] {
                let mut cfg = Config::new(64);
                cfg.prioritization = mode;
                cfg.temperature = t;
                cfg.staleness_coef = c;
                cfg.seed = 17;
                let mut a = Archive::new(cfg).unwrap();
                for i in 0..30u64 {
                    let mut s = ((i * 7919) % 6) as f64 / 5.0; // ties on purpose
                    if mode == Prioritization::Softmax {
                        s = 800.0 + 3.0 * s; // exp(score / T) alone would overflow
                    }
                    add_scores(&mut a, &[s], i * 2 / 3);
                }
                let step = 25;
                assert_law(&a, step);
                let probs: Vec<f64> = a.probabilities(step).unwrap().iter().map(|x| x.1).collect();
                let got = counts(&mut a, 100_000, step);
                assert!(
                    draws_fit(&got, &probs),
                    "{mode:?} T={t} c={c}: {got:?} vs {probs:?}"
                );
            }
        }
    }
}

#[test]
fn rank_ties_rank_smaller_ids_first_and_zero_staleness_is_uniform() {
    let mut cfg = Config::new(8);
    cfg.staleness_coef = 0.5;
    let mut a = Archive::new(cfg).unwrap();
    add_scores(&mut a, &[0.5, 0.5, 0.5], 4);
    let h = [1.0, 0.5, 1.0 / 3.0];
    let p = a.probabilities(4).unwrap(); // every last_step is 4: staleness sum 0
    for (i, (id, pi)) in p.iter().enumerate() {
        assert_eq!(*id, Id(i as u64));
        let want = 0.5 * h[i] / (1.0 + 0.5 + 1.0 / 3.0) + 0.5 / 3.0;
        assert!((pi - want).abs() < 1e-12);
    }
}

#[test]
fn proportional_all_zero_is_uniform() {
    let mut cfg = Config::new(8);
    cfg.prioritization = Prioritization::Proportional;
    let mut a = Archive::new(cfg).unwrap();
    add_scores(&mut a, &[0.0; 4], 0);
    let p: Vec<f64> = a.probabilities(0).unwrap().iter().map(|x| x.1).collect();
    assert_eq!(p, vec![0.25; 4]);
    let got = counts(&mut a, 40_000, 0);
    assert!(draws_fit(&got, &p));
}

/// Proportional weights relative to the highest score, `h = (score / max)^(1/T)`, exact
/// while the top moves far up and down: no overflow, no underflow of the top.
#[test]
fn proportional_weights_are_relative_to_the_top_score() {
    for t in [1.0, 0.5, 3.0, 0.01] {
        for scores in [
            vec![2000.0, 1.0, 0.5],
            vec![1e-5, 1e-6, 0.0],
            vec![0.0, 0.0, 0.0],
            vec![1e300, 1e-300, 5.0],
            vec![5e-324, 0.0, 1e-320],
        ] {
            let mut cfg = Config::new(8);
            cfg.prioritization = Prioritization::Proportional;
            cfg.temperature = t;
            let mut a = Archive::new(cfg).unwrap();
            add_scores(&mut a, &scores, 0);
            assert_law(&a, 0);
            // The top falls far below the rest, then leaves.
            a.update_scores(&[Id(0)], &[scores[0] * 1e-200]).unwrap();
            assert_law(&a, 0);
            a.remove(&[Id(0)]).unwrap();
            assert_law(&a, 0);
            a.check_invariants();
        }
    }
    // Low temperature: the top entry takes every draw (score^(1/T) alone overflows to inf,
    // or underflows to 0 for small scores, which made draws uniform).
    for scores in [[2000.0, 1.0, 0.5], [1e-5, 1e-6, 0.0]] {
        let mut cfg = Config::new(8);
        cfg.prioritization = Prioritization::Proportional;
        cfg.temperature = 0.01;
        let mut a = Archive::new(cfg).unwrap();
        add_scores(&mut a, &scores, 0);
        assert!(a.sample(1000, 0).unwrap().iter().all(|&id| id == Id(0)));
    }
}

/// Scores hundreds of temperatures apart and a maximum that rises, falls and leaves: the law
/// stays the shifted closed form `exp((s − max)/T) / Σ`.
#[test]
fn softmax_never_overflows_and_follows_the_maximum() {
    let mut cfg = Config::new(6);
    cfg.prioritization = Prioritization::Softmax;
    cfg.temperature = 0.5;
    cfg.staleness_coef = 0.25;
    let mut a = Archive::new(cfg).unwrap();
    add_scores(&mut a, &[0.0, -1.0, 0.5], 0);
    assert_law(&a, 1);
    add_scores(&mut a, &[1e4], 1); // exp(2e4) overflows: the reference moves up
    assert_law(&a, 1);
    a.remove(&[Id(3)]).unwrap(); // the maximum leaves: the reference moves back down
    assert_law(&a, 1);
    a.update_scores(&ids(&[0, 1]), &[-1e300, 1e300]).unwrap();
    assert_law(&a, 1);
    add_scores(&mut a, &[1e300, -5e299], 2);
    assert_law(&a, 2);
    let probs: Vec<f64> = a.probabilities(2).unwrap().iter().map(|x| x.1).collect();
    let got = counts(&mut a, 50_000, 2);
    assert!(draws_fit(&got, &probs), "{got:?} vs {probs:?}");
    a.check_invariants();
}

/// `sample(k, step)` draws from the law at call start, then marks the drawn entries.
#[test]
fn a_draw_marks_last_step_and_count_after_drawing() {
    let mut cfg = Config::new(8);
    cfg.staleness_coef = 1.0;
    let mut a = Archive::new(cfg).unwrap();
    add_scores(&mut a, &[1.0, 0.0], 0);
    add_scores(&mut a, &[1.0], 10);
    let drawn = a.sample(50, 10).unwrap();
    // At step 10 entry 2 has staleness 0: never drawn, even though draws mark others at 10.
    assert!(!drawn.contains(&Id(2)));
    let info = a.info(&ids(&[0, 1, 2])).unwrap();
    assert_eq!(info.iter().map(|e| e.times_sampled).sum::<u64>(), 50);
    assert_eq!(info[2].times_sampled, 0);
    for e in &info[..2] {
        assert!(e.times_sampled == 0 || e.last_step == 10);
        assert_eq!(e.added_step, 0);
    }
    assert_eq!(a.max_last_step(), 10);
    assert!(a.sample(1, 9).is_err());
    assert_eq!(a.stats().sampled, 50);
}

#[test]
fn the_same_seed_gives_the_same_draws() {
    let run = |seed: u64| {
        let mut cfg = Config::new(100);
        cfg.staleness_coef = 0.3;
        cfg.seed = seed;
        let mut a = Archive::new(cfg).unwrap();
        add_scores(
            &mut a,
            &(0..50).map(|i| i as f64 / 50.0).collect::<Vec<_>>(),
            0,
        );
        (1..6)
            .flat_map(|s| a.sample(20, s).unwrap())
            .collect::<Vec<Id>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
    let mut a = archive(10);
    add_scores(&mut a, &[0.3, 0.1], 0);
    assert_eq!(a.sample(0, 0).unwrap(), vec![]);
}
