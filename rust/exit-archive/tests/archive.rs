use exit_archive::{Admission, Archive, Config, Error, Metric, Prioritization};
use proptest::prelude::*;

fn archive(capacity: usize) -> Archive {
    Archive::new(Config::new(capacity)).unwrap()
}

fn add_scores(a: &mut Archive, scores: &[f64], step: u64) -> Vec<u64> {
    let payloads: Vec<Vec<u8>> = scores.iter().map(|s| s.to_string().into_bytes()).collect();
    let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    a.add(&refs, scores, None, None, step).unwrap()
}

#[test]
fn ids_are_sequential_and_never_reused() {
    let mut a = archive(2);
    assert_eq!(add_scores(&mut a, &[0.1, 0.2], 0), vec![0, 1]);
    a.remove(&[0]).unwrap();
    assert_eq!(add_scores(&mut a, &[0.3, 0.4], 0), vec![2, 3]);
    assert_eq!(a.ids(), vec![2, 3]);
    assert_eq!(a.next_id(), 4);
}

#[test]
fn eviction_takes_lowest_score_then_smallest_id_and_spares_the_new_entry() {
    let mut a = archive(3);
    add_scores(&mut a, &[0.5, 0.1, 0.1], 0);
    add_scores(&mut a, &[0.7], 0); // evicts id 1 (score tie with 2, smaller id)
    assert_eq!(a.ids(), vec![0, 2, 3]);
    add_scores(&mut a, &[0.0], 0); // lowest score, but never evicted by its own insertion
    assert_eq!(a.ids(), vec![0, 3, 4]);
    add_scores(&mut a, &[0.0, 0.0], 0); // 4 goes first, then 5; 6 stays
    assert_eq!(a.ids(), vec![0, 3, 6]);
    a.check_invariants();
}

#[test]
fn lineage_survives_eviction() {
    let mut a = archive(2);
    let r = add_scores(&mut a, &[0.1], 0)[0];
    let c = a
        .add(&[b"c".as_slice()], &[0.2], Some(&[r as i64]), None, 0)
        .unwrap()[0];
    let g = a
        .add(&[b"g".as_slice()], &[0.3], Some(&[c as i64]), None, 0)
        .unwrap()[0];
    assert!(!a.contains(r));
    let lin = a.lineage(&[r, c, g]).unwrap();
    assert_eq!((lin[2].parent, lin[2].root, lin[2].depth), (Some(c), r, 2));
    assert_eq!((lin[0].parent, lin[0].root, lin[0].depth), (None, r, 0));
    // A child of an evicted id is still accepted, and a parent inside the same batch too.
    let ids = a
        .add(
            &[b"x".as_slice(), b"y"],
            &[0.9, 0.9],
            Some(&[r as i64, g as i64 + 1]),
            None,
            0,
        )
        .unwrap();
    let lin = a.lineage(&ids).unwrap();
    assert_eq!((lin[0].depth, lin[1].depth, lin[1].root), (1, 2, r));
    assert_eq!(a.lineage(&[99]), Err(Error::UnknownId(99)));
}

#[test]
fn failed_calls_change_nothing() {
    let mut cfg = Config::new(4);
    cfg.embedding_dim = Some(2);
    cfg.prioritization = Prioritization::Proportional;
    let mut a = Archive::new(cfg).unwrap();
    a.add(&[b"a".as_slice()], &[1.0], None, Some(&[1.0, 0.0]), 3)
        .unwrap();
    let before = a.to_bytes();
    let p: &[&[u8]] = &[b"b"];
    assert!(matches!(
        a.add(p, &[f64::NAN], None, Some(&[1.0, 0.0]), 0),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        a.add(p, &[-1.0], None, Some(&[1.0, 0.0]), 0),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        a.add(p, &[1.0], None, Some(&[1.0]), 0),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        a.add(p, &[1.0], None, Some(&[0.0, 0.0]), 0),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        a.add(p, &[1.0], None, None, 0),
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        a.add(p, &[1.0], Some(&[7]), Some(&[1.0, 0.0]), 0),
        Err(Error::UnknownId(7))
    );
    assert_eq!(
        a.update_scores(&[0, 5], &[1.0, 1.0]),
        Err(Error::UnknownId(5))
    );
    assert!(matches!(
        a.update_scores(&[0], &[f64::INFINITY]),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(a.sample(1, 2), Err(Error::Invalid(_)))); // step before last_step 3
    assert!(matches!(a.remove(&[0, 0]), Err(Error::Invalid(_))));
    assert!(matches!(a.novelty(&[1.0, 0.0], 0), Err(Error::Invalid(_))));
    assert_eq!(a.to_bytes(), before);
    assert!(matches!(archive(1).sample(1, 0), Err(Error::Invalid(_))));
    assert!(Archive::new(Config::new(0)).is_err());
}

#[test]
fn probabilities_follow_the_formulas() {
    let mut cfg = Config::new(10);
    cfg.temperature = 0.5;
    cfg.staleness_coef = 0.25;
    let mut a = Archive::new(cfg).unwrap();
    add_scores(&mut a, &[0.3, 0.9, 0.3], 2);
    add_scores(&mut a, &[0.1], 5);
    let p = a.probabilities(6).unwrap();
    // ranks: id1 -> 1, id0 -> 2, id2 -> 3 (tie, larger id), id3 -> 4; h = (1/r)^2
    let h = [1.0 / 4.0, 1.0, 1.0 / 9.0, 1.0 / 16.0];
    let hs: f64 = h.iter().sum();
    let stale = [4.0, 4.0, 4.0, 1.0];
    for (i, (id, pi)) in p.iter().enumerate() {
        assert_eq!(*id, i as u64);
        let expected = 0.75 * h[i] / hs + 0.25 * stale[i] / 13.0;
        assert!((pi - expected).abs() < 1e-12, "{i}: {pi} vs {expected}");
    }
}

#[test]
fn softmax_probabilities_are_the_shifted_closed_form() {
    let mut cfg = Config::new(10);
    cfg.prioritization = Prioritization::Softmax;
    cfg.temperature = 0.5;
    cfg.staleness_coef = 0.25;
    let mut a = Archive::new(cfg).unwrap();
    // exp(1000 / 0.5) overflows: only the shift by the maximum keeps this finite.
    add_scores(&mut a, &[1000.0, 999.0, 1000.0], 2);
    add_scores(&mut a, &[998.5], 5);
    let p = a.probabilities(6).unwrap();
    let h = [1.0, (-2.0f64).exp(), 1.0, (-3.0f64).exp()];
    let hs: f64 = h.iter().sum();
    let stale = [4.0, 4.0, 4.0, 1.0];
    for (i, (id, pi)) in p.iter().enumerate() {
        assert_eq!(*id, i as u64);
        let expected = 0.75 * h[i] / hs + 0.25 * stale[i] / 13.0;
        assert!(
            (pi / expected - 1.0).abs() < 1e-12,
            "{i}: {pi} vs {expected}"
        );
    }
    // The maximum leaves and falls by far more than the slack: still the closed form.
    a.remove(&[0, 2]).unwrap();
    a.update_scores(&[1], &[-1e6]).unwrap();
    let p = a.probabilities(6).unwrap();
    // id 1's softmax weight is exp(-2e6) = 0; staleness 4 and 1 over 5.
    let expected = [0.25 * 4.0 / 5.0, 0.75 + 0.25 * 1.0 / 5.0];
    for (k, (_, pi)) in p.iter().enumerate() {
        assert!(
            (pi / expected[k] - 1.0).abs() < 1e-12,
            "{pi} vs {}",
            expected[k]
        );
    }
    a.check_invariants();
}

/// Proportional weights relative to the highest score, `h = (score / max)^(1/T)` (all zero:
/// uniform), exact while the top moves far up and down: no overflow, no underflow of the top.
#[test]
fn proportional_probabilities_are_relative_to_the_top_score() {
    let expected = |scores: &[f64], t: f64| -> Vec<f64> {
        let top = scores.iter().copied().fold(0.0, f64::max);
        let h: Vec<f64> = scores
            .iter()
            .map(|&s| match (top, s) {
                (0.0, _) => 1.0,
                (_, 0.0) => 0.0,
                // (s / top)^(1/T), without the underflow of s / top itself.
                _ => ((s.ln() - top.ln()) / t).exp(),
            })
            .collect();
        let total: f64 = h.iter().sum();
        h.iter().map(|x| x / total).collect()
    };
    // Weights are kept relative to a reference within e^±256 of the top, so a probability
    // more than e^-450 (1e-195) below the top's may read as 0.
    let close = |got: &[(u64, f64)], want: &[f64]| {
        for ((_, g), w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-12 * w + 1e-190, "{got:?} vs {want:?}");
        }
    };
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
            close(&a.probabilities(0).unwrap(), &expected(&scores, t));
            // The top falls far below the rest, then leaves.
            a.update_scores(&[0], &[scores[0] * 1e-200]).unwrap();
            let mut now = scores.clone();
            now[0] *= 1e-200;
            close(&a.probabilities(0).unwrap(), &expected(&now, t));
            a.remove(&[0]).unwrap();
            close(&a.probabilities(0).unwrap(), &expected(&now[1..], t));
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
        assert!(a.sample(1000, 0).unwrap().iter().all(|&id| id == 0));
    }
}

/// Sizes that come from the caller are bounded: they fail as invalid input, never abort on
/// allocation, and change nothing.
#[test]
fn caller_sizes_are_bounded() {
    let mut a = archive(4);
    add_scores(&mut a, &[1.0, 2.0], 0);
    let before = a.to_bytes();
    for k in [exit_archive::MAX_SAMPLE + 1, 1 << 34, 1 << 61, usize::MAX] {
        assert!(matches!(a.sample(k, 0), Err(Error::Invalid(_))), "{k}");
        assert!(matches!(
            a.sample_with_payloads(k, 0),
            Err(Error::Invalid(_))
        ));
    }
    assert_eq!(a.to_bytes(), before);
    for dim in [exit_archive::MAX_EMBEDDING_DIM + 1, 1 << 61, usize::MAX] {
        let mut cfg = Config::new(4);
        cfg.embedding_dim = Some(dim);
        assert!(matches!(Archive::new(cfg), Err(Error::Invalid(_))), "{dim}");
    }
}

#[test]
fn sample_with_payloads_is_sample_then_get() {
    let mut a = archive(8);
    add_scores(&mut a, &[0.1, 0.5, 0.2, 0.9], 0);
    let mut b = a.clone();
    let (ids, payloads) = a.sample_with_payloads(50, 3).unwrap();
    assert_eq!(ids, b.sample(50, 3).unwrap());
    assert_eq!(payloads, b.get(&ids).unwrap());
    assert_eq!(a.to_bytes(), b.to_bytes());
}

#[test]
fn not_below_min_rejects_but_keeps_ids_and_lineage() {
    let mut cfg = Config::new(2);
    cfg.admission = Admission::NotBelowMin;
    let mut a = Archive::new(cfg).unwrap();
    add_scores(&mut a, &[0.5, 0.3], 0);
    let ids = a
        .add(
            &[b"x".as_slice(), b"y"],
            &[0.2, 0.3],
            Some(&[0, 2]),
            None,
            1,
        )
        .unwrap();
    assert_eq!(ids, vec![2, 3]);
    assert_eq!(a.ids(), vec![0, 3]); // 2 rejected (0.2 < 0.3); 3 ties 0.3 and evicts 1
    assert!(!a.contains(2));
    assert_eq!(a.get(&[2]), Err(Error::UnknownId(2)));
    assert_eq!(a.lineage(&[3]).unwrap()[0].depth, 2);
    let s = a.stats();
    assert_eq!((s.rejected, s.evicted), (1, 1));
    a.check_invariants();
    let b = Archive::from_bytes(&a.to_bytes()).unwrap();
    assert_eq!(b.stats().rejected, 1);
    assert_eq!(b.config().admission, Admission::NotBelowMin);
}

fn chi_square(counts: &[u64], probs: &[f64]) -> f64 {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .zip(probs)
        .map(|(&c, &p)| {
            let e = p * total as f64;
            (c as f64 - e).powi(2) / e
        })
        .sum()
}

#[test]
fn sampling_matches_probabilities() {
    for prio in [
        Prioritization::Rank,
        Prioritization::Proportional,
        Prioritization::Softmax,
    ] {
        let mut cfg = Config::new(64);
        cfg.prioritization = prio;
        cfg.staleness_coef = 0.3;
        cfg.temperature = 0.7;
        cfg.seed = 11;
        let mut a = Archive::new(cfg).unwrap();
        let scores: Vec<f64> = (0..20).map(|i| (i % 7) as f64 / 7.0 + 0.05).collect();
        for (i, s) in scores.iter().enumerate() {
            add_scores(&mut a, &[*s], i as u64);
        }
        let probs = a.probabilities(30).unwrap();
        // One call draws i.i.d. from P computed at its start.
        let mut counts = vec![0u64; 20];
        for id in a.sample(100_000, 30).unwrap() {
            counts[id as usize] += 1;
        }
        let p: Vec<f64> = probs.iter().map(|x| x.1).collect();
        let chi = chi_square(&counts, &p);
        // 19 degrees of freedom: the 99.9% quantile is 43.8.
        assert!(chi < 43.8, "{prio:?}: chi2 = {chi}");
        let after = a.info(&[0, 19]).unwrap();
        assert_eq!((after[0].last_step, after[1].last_step), (30, 30));
        assert_eq!(
            after.iter().map(|e| e.times_sampled).sum::<u64>(),
            counts[0] + counts[19]
        );
    }
}

#[test]
fn snapshot_round_trip_continues_identically() {
    for prio in [
        Prioritization::Rank,
        Prioritization::Proportional,
        Prioritization::Softmax,
    ] {
        round_trip(prio);
    }
}

fn round_trip(prio: Prioritization) {
    let mut cfg = Config::new(50);
    cfg.prioritization = prio;
    cfg.embedding_dim = Some(3);
    cfg.metric = Metric::L2;
    cfg.staleness_coef = 0.5;
    let mut a = Archive::new(cfg).unwrap();
    for step in 0..30u64 {
        let s = [(step % 5) as f64, (step % 3) as f64];
        let e = [step as f32, 1.0, 2.0, 0.5, step as f32, 1.0];
        let parent = if step > 0 { step as i64 } else { -1 };
        a.add(
            &[b"p".as_slice(), b"qq"],
            &s,
            Some(&[-1, parent]),
            Some(&e),
            step,
        )
        .unwrap();
        a.sample(3, step).unwrap();
    }
    a.remove(&[a.ids()[3]]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("arc.snap");
    a.save(&path).unwrap();
    let mut b = Archive::load(&path).unwrap();
    b.check_invariants();
    assert_eq!(b.to_bytes(), a.to_bytes());
    for step in 30..40 {
        assert_eq!(a.sample(7, step).unwrap(), b.sample(7, step).unwrap());
    }
    assert_eq!(
        a.novelty(&[1.0, 2.0, 3.0], 4).unwrap(),
        b.novelty(&[1.0, 2.0, 3.0], 4).unwrap()
    );
    // Only the snapshot remains in the folder.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn damaged_snapshots_are_rejected() {
    let mut a = archive(8);
    add_scores(&mut a, &[0.1, 0.2, 0.3], 0);
    let good = a.to_bytes();
    assert!(Archive::from_bytes(&good).is_ok());
    for cut in 0..good.len() {
        assert!(
            matches!(Archive::from_bytes(&good[..cut]), Err(Error::Corrupt(_))),
            "cut {cut}"
        );
    }
    for i in 0..good.len() {
        for bit in [0, 3, 7] {
            let mut bad = good.clone();
            bad[i] ^= 1 << bit;
            assert!(
                matches!(Archive::from_bytes(&bad), Err(Error::Corrupt(_))),
                "byte {i}"
            );
        }
    }
    // A huge declared count must not allocate: it fails the length check first.
    let mut huge = good.clone();
    huge[16 + 11 * 8..16 + 12 * 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(matches!(Archive::from_bytes(&huge), Err(Error::Corrupt(_))));
}

/// A snapshot over 8 MB (loaded with checksumming on a second thread where there are two
/// cores): round trip, and the embedding checks done while reading.
#[test]
fn large_snapshots_round_trip_and_reject_bad_embeddings() {
    let (n, dim) = (20_000, 96);
    for metric in [Metric::Cosine, Metric::L2] {
        let mut cfg = Config::new(n);
        cfg.embedding_dim = Some(dim);
        cfg.metric = metric;
        let mut a = Archive::new(cfg).unwrap();
        let payloads: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 100 + i % 50]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        let scores: Vec<f64> = (0..n).map(|i| (i % 997) as f64 / 997.0).collect();
        let mut emb: Vec<f32> = (0..n * dim)
            .map(|i| ((i * 7919) % 1009) as f32 / 1009.0 - 0.5)
            .collect();
        // Finite values whose squares overflow are valid input, so they must load.
        emb[5 * dim..6 * dim].fill(3e30);
        a.add(&refs, &scores, None, Some(&emb), 0).unwrap();
        let good = a.to_bytes();
        assert!(good.len() > 8 << 20);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.snap");
        a.save(&path).unwrap();
        let queries: Vec<f32> = emb[..4 * dim].iter().map(|x| x * 0.5 + 0.01).collect();
        for b in [
            Archive::load(&path).unwrap(),
            Archive::from_bytes(&good).unwrap(),
        ] {
            b.check_invariants();
            assert_eq!(b.to_bytes(), good);
            // The squared norms are recomputed on load: the same bits as at insertion.
            let (x, y) = (a.knn(&queries, 5).unwrap(), b.knn(&queries, 5).unwrap());
            assert_eq!((x.dist, x.slot), (y.dist, y.slot));
        }
        let emb_start = good.len() - 12 - n * dim * 4;
        let resealed = |mut bytes: Vec<u8>| {
            let body = bytes.len() - 12;
            let crc = crc32fast::hash(&bytes[..body]);
            bytes[body..body + 4].copy_from_slice(&crc.to_le_bytes());
            bytes
        };
        let corrupt_message = |bytes: &[u8]| match Archive::from_bytes(bytes) {
            Err(Error::Corrupt(m)) => m,
            other => panic!("expected Corrupt, got {:?}", other.map(|a| a.len())),
        };
        let mut flipped = good.clone();
        flipped[emb_start + 1_000_003] ^= 4;
        assert_eq!(corrupt_message(&flipped), "checksum mismatch");
        let cut = &good[..good.len() - 5000];
        assert_eq!(
            corrupt_message(cut),
            "declared sizes do not match the file length"
        );
        let bad_row = |row: usize, value: f32| {
            let mut bad = good.clone();
            let at = emb_start + (row * dim + 7) * 4;
            bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
            resealed(bad)
        };
        let embedding_error = "non-finite embedding, or zero under the cosine metric";
        for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(corrupt_message(&bad_row(n - 1, value)), embedding_error);
            assert_eq!(corrupt_message(&bad_row(5, value)), embedding_error);
        }
        let mut zero_row = good.clone();
        zero_row[emb_start + 3 * dim * 4..emb_start + 4 * dim * 4].fill(0);
        let zero_row = resealed(zero_row);
        match metric {
            Metric::Cosine => assert_eq!(corrupt_message(&zero_row), embedding_error),
            Metric::L2 => assert!(Archive::from_bytes(&zero_row).is_ok()),
        }
    }
}

#[test]
fn novelty_matches_brute_force() {
    for metric in [Metric::Cosine, Metric::L2] {
        let mut cfg = Config::new(100);
        cfg.embedding_dim = Some(4);
        cfg.metric = metric;
        let mut a = Archive::new(cfg).unwrap();
        assert_eq!(
            a.novelty(&[1.0, 0.0, 0.0, 0.0], 3).unwrap(),
            vec![f32::INFINITY]
        );
        let rows: Vec<f32> = (0..40).map(|i| ((i * 37) % 11) as f32 - 4.5).collect();
        let payloads: Vec<&[u8]> = vec![b"r".as_slice(); 10];
        a.add(&payloads, &[0.5; 10], None, Some(&rows), 0).unwrap();
        let q = [1.0f32, -2.0, 0.5, 3.0];
        let dist = |r: &[f32]| -> f32 {
            let dot: f32 = r.iter().zip(&q).map(|(x, y)| x * y).sum();
            let nr: f32 = r.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nq: f32 = q.iter().map(|x| x * x).sum::<f32>().sqrt();
            match metric {
                Metric::Cosine => 1.0 - dot / (nr * nq),
                Metric::L2 => r
                    .iter()
                    .zip(&q)
                    .map(|(x, y)| (x - y).powi(2))
                    .sum::<f32>()
                    .sqrt(),
            }
        };
        let mut d: Vec<f32> = rows.chunks(4).map(dist).collect();
        d.sort_by(|x, y| x.total_cmp(y));
        for k in [1usize, 3, 10, 50] {
            let kk = k.min(10);
            let expected = d[..kk].iter().sum::<f32>() / kk as f32;
            let got = a.novelty(&q, k).unwrap()[0];
            assert!(
                (got - expected).abs() < 1e-4,
                "{metric:?} k={k}: {got} vs {expected}"
            );
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Add(Vec<(u8, Option<u8>)>),
    Update(u8, u8),
    Remove(u8),
    Sample(u8),
    Reload,
    Forget(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((0u8..8, prop::option::of(any::<u8>())), 1..48).prop_map(Op::Add),
        2 => (any::<u8>(), 0u8..8).prop_map(|(i, s)| Op::Update(i, s)),
        1 => any::<u8>().prop_map(Op::Remove),
        2 => (0u8..6).prop_map(Op::Sample),
        1 => Just(Op::Reload),
        1 => any::<u8>().prop_map(Op::Forget),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random operation sequences against a plain model of the residents.
    #[test]
    /// Capacities of a few hundred exercise the bulk (rebuild) paths of add and update.
    #[test]
    fn behaves_like_the_model(
        capacity in prop_oneof![1usize..12, 256usize..300],
        prio in prop::sample::select(vec![
            Prioritization::Rank, Prioritization::Proportional, Prioritization::Softmax,
        ]),
        admission in prop::sample::select(vec![Admission::Always, Admission::NotBelowMin]),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut cfg = Config::new(capacity);
        cfg.prioritization = prio;
        cfg.admission = admission;
        cfg.staleness_coef = 0.25;
        cfg.temperature = 0.5;
        let mut a = Archive::new(cfg).unwrap();
        // Softmax takes any score; gaps of hundreds of temperatures need the shifted weights.
        let score_of = |x: u8| match (prio, x) {
            (Prioritization::Softmax, 7) => 900.0,
            (Prioritization::Softmax, 6) => -700.0,
            _ => x as f64 / 4.0,
        };
        let mut model: Vec<(u64, f64)> = Vec::new(); // resident (id, score)
        let mut rejected = 0u64;
        let mut next = 0u64;
        let mut step = 0u64;
        for op in ops {
            match op {
                Op::Add(items) => {
                    let scores: Vec<f64> = items.iter().map(|x| score_of(x.0)).collect();
                    let parents: Vec<i64> = items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| match x.1 {
                            Some(p) if next + (i as u64) > 0 => {
                                let p = p as u64 % (next + i as u64);
                                // Forgotten (evicted, below the floor) ids cannot be parents.
                                if p >= next || a.lineage(&[p]).is_ok() { p as i64 } else { -1 }
                            }
                            _ => -1,
                        })
                        .collect();
                    let payloads: Vec<&[u8]> = vec![b"x".as_slice(); items.len()];
                    let ids = a.add(&payloads, &scores, Some(&parents), None, step).unwrap();
                    for (id, s) in ids.into_iter().zip(scores) {
                        prop_assert_eq!(id, next);
                        next += 1;
                        if model.len() == capacity {
                            let victim = model
                                .iter()
                                .enumerate()
                                .min_by(|x, y| x.1 .1.total_cmp(&y.1 .1).then(x.1 .0.cmp(&y.1 .0)))
                                .unwrap()
                                .0;
                            if admission == Admission::NotBelowMin && s < model[victim].1 {
                                rejected += 1;
                                continue;
                            }
                            model.remove(victim);
                        }
                        model.push((id, s));
                    }
                }
                Op::Update(i, s) if !model.is_empty() => {
                    // Update a run of entries (with a repeat) so large archives take the bulk path.
                    let count = 1 + (i as usize % 16);
                    let mut ids = Vec::new();
                    let mut scores = Vec::new();
                    for k in 0..count {
                        let j = (i as usize * 7 + k * 13) % model.len();
                        let score = score_of(((s as usize + k) % 8) as u8);
                        model[j].1 = score;
                        ids.push(model[j].0);
                        scores.push(score);
                    }
                    ids.push(ids[0]);
                    scores.push(scores[0]);
                    let first = model.iter_mut().find(|m| m.0 == ids[0]).unwrap();
                    first.1 = scores[0];
                    a.update_scores(&ids, &scores).unwrap();
                }
                Op::Remove(i) if !model.is_empty() => {
                    let (id, _) = model.remove(i as usize % model.len());
                    a.remove(&[id]).unwrap();
                }
                Op::Sample(k) if !model.is_empty() => {
                    step += 1;
                    let probs = a.probabilities(step).unwrap();
                    let total: f64 = probs.iter().map(|x| x.1).sum();
                    prop_assert!((total - 1.0).abs() < 1e-9);
                    for id in a.sample(k as usize, step).unwrap() {
                        prop_assert!(model.iter().any(|m| m.0 == id));
                    }
                }
                Op::Forget(f) => {
                    let floor = a.forget_lineage(next * f as u64 / 255);
                    prop_assert!(floor <= next);
                    for id in 0..next {
                        let resident = model.iter().any(|m| m.0 == id);
                        prop_assert_eq!(a.lineage(&[id]).is_ok(), id >= floor || resident);
                    }
                }
                Op::Reload => {
                    let b = Archive::from_bytes(&a.to_bytes()).unwrap();
                    prop_assert_eq!(b.to_bytes(), a.to_bytes());
                    a = b;
                }
                _ => {}
            }
            a.check_invariants();
            prop_assert_eq!(a.stats().rejected, rejected);
            prop_assert!(a.len() <= capacity);
            let mut ids: Vec<u64> = model.iter().map(|m| m.0).collect();
            ids.sort_unstable();
            prop_assert_eq!(a.ids(), ids);
            let info = a.info(&a.ids()).unwrap();
            for (e, id) in info.iter().zip(a.ids()) {
                let s = model.iter().find(|m| m.0 == id).unwrap().1;
                prop_assert_eq!(e.score, s);
            }
        }
    }
}

#[test]
fn forget_lineage_bounds_the_log_and_survives_snapshots() {
    let mut a = Archive::new(Config::new(8)).unwrap();
    let mut parent = -1i64;
    for step in 0..3000u64 {
        // Id 0 scores highest and stays resident for the whole run.
        let score = if step == 0 { 1e9 } else { step as f64 };
        let ids = a
            .add(&[b"x".as_slice()], &[score], Some(&[parent]), None, step)
            .unwrap();
        parent = ids[0] as i64;
    }
    let bytes_before = a.stats().lineage_bytes;
    assert_eq!(a.forget_lineage(2000), 2000);
    assert_eq!(a.forget_lineage(10), 2000, "the floor never moves back");
    a.check_invariants();
    assert_eq!(a.forget_lineage(u64::MAX), 3000);
    a.check_invariants();
    assert!(a.stats().lineage_bytes * 10 < bytes_before);
    // Evicted ids below the floor are forgotten; residents keep their lineage.
    assert!(matches!(a.lineage(&[2991]), Err(Error::UnknownId(2991))));
    assert_eq!(a.lineage(&[0]).unwrap()[0].depth, 0);
    assert_eq!(a.lineage(&[2999]).unwrap()[0].depth, 2999);
    assert!(matches!(
        a.add(&[b"y".as_slice()], &[1.0], Some(&[50]), None, 3000),
        Err(Error::UnknownId(50))
    ));
    let child = a
        .add(&[b"y".as_slice()], &[1e6], Some(&[2999]), None, 3000)
        .unwrap();
    assert_eq!(a.lineage(&child).unwrap()[0].depth, 3000);
    a.check_invariants();
    let b = Archive::from_bytes(&a.to_bytes()).unwrap();
    b.check_invariants();
    assert_eq!(b.lineage_floor(), 3000);
    assert_eq!(
        b.lineage(&[0, 2999, child[0]]).unwrap(),
        a.lineage(&[0, 2999, child[0]]).unwrap()
    );
    assert_eq!(b.to_bytes(), a.to_bytes());
}

/// Snapshots of every earlier version load; a version-4 file continues exactly as the
/// archive that wrote it would have (its next draws were recorded when it was written).
#[test]
fn older_snapshot_versions_load_and_continue() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/snapshot_load");
    for (name, version) in [
        ("rank.snap", 1),
        ("prop_emb.snap", 1),
        ("pinned_v2.snap", 2),
        ("softmax_v3.snap", 3),
        ("softmax_v4.snap", 4),
        ("proportional_v4.snap", 4),
    ] {
        let bytes = std::fs::read(corpus.join(name)).unwrap();
        assert_eq!(bytes[8..12], (version as u32).to_le_bytes(), "{name}");
        let a = Archive::from_bytes(&bytes).unwrap();
        a.check_invariants();
        assert!(!a.is_empty(), "{name}");
        let again = Archive::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(again.to_bytes(), a.to_bytes());
    }
    for (name, next) in [
        ("softmax_v4.snap", [2, 2, 24, 5, 18, 5]),
        ("proportional_v4.snap", [2, 2, 24, 5, 26, 5]),
    ] {
        let mut a = Archive::load(corpus.join(name)).unwrap();
        assert_eq!(a.sample(6, 20).unwrap(), next, "{name}");
    }
}
