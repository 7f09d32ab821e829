//! The archive's contract, one semantic per test: ids, eviction and admission, lineage,
//! score updates, removal, errors that change nothing, bounded sizes.

mod common;

use common::{add_scores, archive, ids};
use exit_archive::{Admission, Archive, Config, Error, Id, Prioritization};

#[test]
fn ids_are_sequential_never_reused_and_payloads_round_trip() {
    let mut a = archive(3);
    let first = a
        .add(
            &[b"\xc3\xa9".as_slice(), b"\x00bytes"],
            &[0.1, 0.2],
            None,
            None,
            0,
        )
        .unwrap();
    assert_eq!(first, ids(&[0, 1]));
    assert_eq!(
        a.get(&first).unwrap(),
        [b"\xc3\xa9".as_slice(), b"\x00bytes"]
    );
    a.remove(&ids(&[0])).unwrap();
    assert_eq!(add_scores(&mut a, &[0.3, 0.4], 0), ids(&[2, 3]));
    assert_eq!(a.ids(), ids(&[1, 2, 3]));
    assert_eq!(a.next_id(), Id(4));
    assert!(a.contains(Id(2)) && !a.contains(Id(0)) && !a.contains(Id(9)));
}

#[test]
fn eviction_takes_lowest_score_then_smallest_id_and_spares_the_new_entry() {
    let mut a = archive(3);
    add_scores(&mut a, &[0.5, 0.1, 0.1], 0);
    add_scores(&mut a, &[0.7], 0); // evicts id 1 (score tie with 2, smaller id)
    assert_eq!(a.ids(), ids(&[0, 2, 3]));
    add_scores(&mut a, &[0.0], 0); // lowest score, but never evicted by its own insertion
    assert_eq!(a.ids(), ids(&[0, 3, 4]));
    add_scores(&mut a, &[0.0, 0.0], 0); // 4 goes first, then 5; 6 stays
    assert_eq!(a.ids(), ids(&[0, 3, 6]));
    assert_eq!(a.stats().evicted, 4);
    a.check_invariants();
}

/// A batch ends exactly as the same entries inserted one call each, for both rules, with
/// many ties and batches larger than the capacity.
#[test]
fn a_batch_behaves_as_one_at_a_time() {
    for admission in [Admission::Always, Admission::NotBelowMin] {
        for (capacity, salt) in [(7, 1u64), (1, 2), (64, 3), (300, 4)] {
            let mut cfg = Config::new(capacity);
            cfg.admission = admission;
            let (mut batch, mut single) = (
                Archive::new(cfg.clone()).unwrap(),
                Archive::new(cfg).unwrap(),
            );
            for round in 0..6u64 {
                let scores: Vec<f64> = (0..(capacity as u64 * 2 + 5))
                    .map(|i| ((i * 7919 + round * 31 + salt) % 5) as f64 / 4.0)
                    .collect();
                add_scores(&mut batch, &scores, round);
                for s in &scores {
                    add_scores(&mut single, &[*s], round);
                }
                assert_eq!(batch.ids(), single.ids(), "{admission:?} {capacity}");
                let (b, s) = (batch.stats(), single.stats());
                assert_eq!((b.evicted, b.rejected), (s.evicted, s.rejected));
            }
            // Slots may be laid out differently; the contents and the law are the same.
            let every = batch.ids();
            assert_eq!(batch.info(&every).unwrap(), single.info(&every).unwrap());
            assert_eq!(
                batch.probabilities(9).unwrap(),
                single.probabilities(9).unwrap()
            );
        }
    }
}

#[test]
fn not_below_min_rejects_low_scores_but_keeps_ids_and_lineage() {
    let mut cfg = Config::new(3);
    cfg.admission = Admission::NotBelowMin;
    let mut a = Archive::new(cfg).unwrap();
    add_scores(&mut a, &[0.5, 0.2, 0.2], 0);
    // 0.1 < lowest 0.2: rejected. 0.2 == lowest: enters, evicting the smallest id of the tie
    // (1); 0.3 evicts 2; the last 0.2 ties with the lowest (4) and evicts it.
    let parents = [Some(Id(0)), Some(Id(3)), None, Some(Id(5))];
    let got = a
        .add(
            &[b"d".as_slice(), b"e", b"f", b"g"],
            &[0.1, 0.2, 0.3, 0.2],
            Some(&parents),
            None,
            1,
        )
        .unwrap();
    assert_eq!(got, ids(&[3, 4, 5, 6]));
    assert_eq!(a.ids(), ids(&[0, 5, 6]));
    let s = a.stats();
    assert_eq!((s.rejected, s.evicted), (1, 3));
    assert!(!a.contains(Id(3)));
    assert_eq!(a.get(&[Id(3)]), Err(Error::UnknownId(Id(3))));
    assert_eq!(a.info(&[Id(3)]).unwrap_err(), Error::UnknownId(Id(3)));
    // The rejected entry keeps its lineage and can be a parent, inside the batch and later.
    let lin = a.lineage(&ids(&[3, 4, 6])).unwrap();
    assert_eq!(lin[0].parent, Some(Id(0)));
    assert_eq!(
        (lin[1].parent, lin[1].root, lin[1].depth),
        (Some(Id(3)), Id(0), 2)
    );
    assert_eq!((lin[2].root, lin[2].depth), (Id(5), 1));
    let child = a
        .add(&[b"h".as_slice()], &[9.0], Some(&[Some(Id(3))]), None, 2)
        .unwrap();
    assert_eq!(a.lineage(&child).unwrap()[0].depth, 2);
    assert_eq!(a.ids(), ids(&[0, 5, 7]));
    // One at a time within a batch: 0.4 evicts 5 (0.3), the next 0.4 evicts 8, and 0.35 is
    // then below the lowest (0.4) although it was above the minimum at call start (0.3).
    add_scores(&mut a, &[0.4, 0.4, 0.35], 3);
    assert_eq!(a.ids(), ids(&[0, 7, 9]));
    assert_eq!(a.stats().rejected, 2);
    a.check_invariants();
    let b = Archive::from_bytes(&a.to_bytes()).unwrap();
    assert_eq!(b.stats().rejected, 2);
    assert_eq!(b.config().admission, Admission::NotBelowMin);
}

#[test]
fn always_is_the_default_and_admits_every_entry() {
    let mut a = archive(2);
    assert_eq!(a.config().admission, Admission::Always);
    add_scores(&mut a, &[0.5, 0.6, 0.1], 0);
    assert_eq!(a.ids(), ids(&[1, 2]));
    assert_eq!(a.stats().rejected, 0);
}

#[test]
fn lineage_is_kept_for_evicted_ids_and_parents_may_come_earlier_in_the_batch() {
    let mut a = archive(2);
    let r = add_scores(&mut a, &[0.1], 0)[0];
    let c = a
        .add(&[b"c".as_slice()], &[0.2], Some(&[Some(r)]), None, 0)
        .unwrap()[0];
    let g = a
        .add(&[b"g".as_slice()], &[0.3], Some(&[Some(c)]), None, 0)
        .unwrap()[0];
    assert!(!a.contains(r));
    let lin = a.lineage(&[r, c, g]).unwrap();
    assert_eq!((lin[0].parent, lin[0].root, lin[0].depth), (None, r, 0));
    assert_eq!((lin[2].parent, lin[2].root, lin[2].depth), (Some(c), r, 2));
    let info = a.info(&[g]).unwrap()[0];
    assert_eq!(info.lineage, lin[2]);
    // A child of an evicted id, and a parent inside the same batch.
    let next = Id(g.0 + 1);
    let pair = a
        .add(
            &[b"x".as_slice(), b"y"],
            &[0.9, 0.9],
            Some(&[Some(r), Some(next)]),
            None,
            0,
        )
        .unwrap();
    let lin = a.lineage(&pair).unwrap();
    assert_eq!((lin[0].depth, lin[1].depth, lin[1].root), (1, 2, r));
    assert_eq!(a.lineage(&[Id(99)]), Err(Error::UnknownId(Id(99))));
    // A parent later in the batch, or the entry itself, is not known yet.
    let later = Id(a.next_id().0 + 1);
    assert_eq!(
        a.add(
            &[b"p".as_slice(), b"q"],
            &[1.0, 1.0],
            Some(&[Some(later), None]),
            None,
            0
        ),
        Err(Error::UnknownId(later))
    );
}

#[test]
fn score_updates_apply_in_order_and_move_eviction() {
    let mut a = archive(2);
    add_scores(&mut a, &[0.1, 0.9], 0);
    a.update_scores(&ids(&[0, 1, 0]), &[0.5, 0.2, 0.8]).unwrap(); // the last 0 wins
    let info = a.info(&ids(&[0, 1])).unwrap();
    assert_eq!((info[0].score, info[1].score), (0.8, 0.2));
    add_scores(&mut a, &[0.5], 0);
    assert_eq!(a.ids(), ids(&[0, 2]));
}

#[test]
fn failed_calls_change_nothing() {
    let mut cfg = Config::new(4);
    cfg.embedding_dim = Some(2);
    cfg.prioritization = Prioritization::Proportional;
    cfg.max_payload_bytes = 8;
    let mut a = Archive::new(cfg).unwrap();
    a.add(&[b"a".as_slice()], &[1.0], None, Some(&[1.0, 0.0]), 3)
        .unwrap();
    let before = a.to_bytes();
    let p: &[&[u8]] = &[b"b"];
    let row = Some([1.0f32, 0.0].as_slice());
    let invalid = |r: exit_archive::Result<Vec<Id>>| matches!(r, Err(Error::Invalid(_)));
    assert!(invalid(a.add(p, &[f64::NAN], None, row, 0)));
    assert!(invalid(a.add(p, &[f64::INFINITY], None, row, 0)));
    assert!(invalid(a.add(p, &[-1.0], None, row, 0))); // proportional needs >= 0
    assert!(invalid(a.add(p, &[1.0, 2.0], None, row, 0)));
    assert!(invalid(a.add(p, &[1.0], None, Some(&[1.0]), 0)));
    assert!(invalid(a.add(p, &[1.0], None, Some(&[0.0, 0.0]), 0))); // cosine: zero row
    assert!(invalid(a.add(p, &[1.0], None, Some(&[f32::NAN, 1.0]), 0)));
    assert!(invalid(a.add(p, &[1.0], None, None, 0))); // embeddings required
    assert!(invalid(a.add(p, &[1.0], Some(&[None, None]), row, 0)));
    assert!(invalid(a.add(
        &[b"123456789".as_slice()],
        &[1.0],
        None,
        row,
        0
    )));
    // A bad score later in the batch: the valid entries before it must not enter.
    assert!(invalid(a.add(
        &[b"x".as_slice(), b"y"],
        &[1.0, f64::NAN],
        None,
        Some(&[1.0, 0.0, 1.0, 0.0]),
        0
    )));
    assert_eq!(
        a.add(p, &[1.0], Some(&[Some(Id(7))]), row, 0),
        Err(Error::UnknownId(Id(7)))
    );
    assert_eq!(
        a.update_scores(&ids(&[0, 5]), &[1.0, 1.0]),
        Err(Error::UnknownId(Id(5)))
    );
    assert!(matches!(
        a.update_scores(&ids(&[0]), &[f64::INFINITY]),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        a.update_scores(&ids(&[0, 0]), &[1.0]),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(a.sample(1, 2), Err(Error::Invalid(_)))); // step before last_step 3
    assert!(matches!(a.probabilities(2), Err(Error::Invalid(_))));
    assert!(matches!(a.remove(&ids(&[0, 0])), Err(Error::Invalid(_))));
    assert_eq!(a.remove(&ids(&[0, 9])), Err(Error::UnknownId(Id(9))));
    assert!(matches!(a.novelty(&[1.0, 0.0], 0), Err(Error::Invalid(_))));
    assert!(matches!(
        a.novelty(&[1.0, 0.0, 1.0], 2),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(a.novelty(&[0.0, 0.0], 2), Err(Error::Invalid(_))));
    assert_eq!(a.to_bytes(), before);
    assert!(matches!(archive(1).sample(1, 0), Err(Error::Invalid(_))));
    for bad in [
        Config {
            capacity: 0,
            ..Config::new(1)
        },
        Config {
            temperature: 0.0,
            ..Config::new(1)
        },
        Config {
            temperature: f64::NAN,
            ..Config::new(1)
        },
        Config {
            staleness_coef: 1.5,
            ..Config::new(1)
        },
        Config {
            embedding_dim: Some(0),
            ..Config::new(1)
        },
    ] {
        assert!(matches!(Archive::new(bad), Err(Error::Invalid(_))));
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
    let (drawn, payloads) = a.sample_with_payloads(50, 3).unwrap();
    assert_eq!(drawn, b.sample(50, 3).unwrap());
    assert_eq!(payloads, b.get(&drawn).unwrap());
    assert_eq!(a.to_bytes(), b.to_bytes());
}

#[test]
fn forget_lineage_bounds_the_log_and_survives_snapshots() {
    let mut a = Archive::new(Config::new(8)).unwrap();
    let mut parent = None;
    for step in 0..3000u64 {
        // Id 0 scores highest and stays resident for the whole run.
        let score = if step == 0 { 1e9 } else { step as f64 };
        let got = a
            .add(&[b"x".as_slice()], &[score], Some(&[parent]), None, step)
            .unwrap();
        parent = Some(got[0]);
    }
    let bytes_before = a.stats().lineage_bytes;
    assert_eq!(a.forget_lineage(Id(2000)), Id(2000));
    assert_eq!(
        a.forget_lineage(Id(10)),
        Id(2000),
        "the floor never moves back"
    );
    a.check_invariants();
    assert_eq!(a.forget_lineage(Id(u64::MAX)), Id(3000));
    a.check_invariants();
    assert!(a.stats().lineage_bytes * 10 < bytes_before);
    // Evicted ids below the floor are forgotten; residents keep their lineage.
    assert_eq!(a.lineage(&[Id(2991)]), Err(Error::UnknownId(Id(2991))));
    assert_eq!(a.lineage(&[Id(0)]).unwrap()[0].depth, 0);
    assert_eq!(a.lineage(&[Id(2999)]).unwrap()[0].depth, 2999);
    assert_eq!(
        a.add(
            &[b"y".as_slice()],
            &[1.0],
            Some(&[Some(Id(50))]),
            None,
            3000
        ),
        Err(Error::UnknownId(Id(50)))
    );
    let child = a
        .add(
            &[b"y".as_slice()],
            &[1e6],
            Some(&[Some(Id(2999))]),
            None,
            3000,
        )
        .unwrap();
    assert_eq!(a.lineage(&child).unwrap()[0].depth, 3000);
    a.check_invariants();
    let b = Archive::from_bytes(&a.to_bytes()).unwrap();
    b.check_invariants();
    assert_eq!(b.lineage_floor(), Id(3000));
    let some = [Id(0), Id(2999), child[0]];
    assert_eq!(b.lineage(&some).unwrap(), a.lineage(&some).unwrap());
    assert_eq!(b.to_bytes(), a.to_bytes());
}
