//! Snapshots: exact continuation after save and load, damaged files refused as corrupt,
//! the large-file read pipeline, and every earlier version.

mod common;

use common::{add_scores, archive};
use exit_archive::{Admission, Archive, Config, CorruptKind, Error, Id, Metric, Prioritization};

fn corrupt_kind(bytes: &[u8]) -> CorruptKind {
    match Archive::from_bytes(bytes) {
        Err(Error::Corrupt(kind)) => kind,
        other => panic!("expected a corrupt file, got {:?}", other.map(|a| a.len())),
    }
}

/// Recomputes the trailer (checksum and length) of a changed file.
fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 12;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..body + 4].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn save_load_continues_identically() {
    for prio in [
        Prioritization::Rank,
        Prioritization::Proportional,
        Prioritization::Softmax,
    ] {
        let mut cfg = Config::new(50);
        cfg.prioritization = prio;
        if prio == Prioritization::Softmax {
            cfg.admission = Admission::NotBelowMin;
        }
        cfg.embedding_dim = Some(3);
        cfg.metric = Metric::L2;
        cfg.staleness_coef = 0.5;
        let mut a = Archive::new(cfg).unwrap();
        for step in 0..30u64 {
            let s = [(step % 5) as f64, (step % 3) as f64];
            let e = [step as f32, 1.0, 2.0, 0.5, step as f32, 1.0];
            let parent = (step > 0).then_some(Id(step));
            a.add(
                &[b"p".as_slice(), b"qq"],
                &s,
                Some(&[None, parent]),
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
        // Allocation sizes (memory_bytes, lineage_bytes) may differ; the state does not.
        let (x, y) = (a.stats(), b.stats());
        assert_eq!(
            (
                x.len,
                x.next_id,
                x.evicted,
                x.rejected,
                x.removed,
                x.sampled,
                x.payload_bytes
            ),
            (
                y.len,
                y.next_id,
                y.evicted,
                y.rejected,
                y.removed,
                y.sampled,
                y.payload_bytes
            )
        );
        assert_eq!(
            (x.depth_max, x.max_last_step, x.lineage_floor),
            (y.depth_max, y.max_last_step, y.lineage_floor)
        );
        assert_eq!(b.config(), a.config());
        for step in 30..40 {
            assert_eq!(a.sample(7, step).unwrap(), b.sample(7, step).unwrap());
            let new = (
                &[b"n".as_slice()],
                &[0.9],
                Some([1.0f32, 0.0, 1.0].as_slice()),
            );
            assert_eq!(
                a.add(new.0, new.1, None, new.2, step).unwrap(),
                b.add(new.0, new.1, None, new.2, step).unwrap()
            );
        }
        assert_eq!(
            a.novelty(&[1.0, 2.0, 3.0], 4).unwrap(),
            b.novelty(&[1.0, 2.0, 3.0], 4).unwrap()
        );
        // Only the snapshot remains in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

#[test]
fn damaged_files_are_refused_as_corrupt() {
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
    assert_eq!(corrupt_kind(&huge), CorruptKind::SizeMismatch);
    let mut foreign = good.clone();
    foreign[..4].copy_from_slice(b"PK\x03\x04");
    assert_eq!(corrupt_kind(&foreign), CorruptKind::BadMagic);
    let mut future = good.clone();
    future[8] = 99;
    assert_eq!(corrupt_kind(&future), CorruptKind::UnsupportedVersion(99));
    assert!(matches!(corrupt_kind(&[0; 20]), CorruptKind::TooShort(20)));
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Archive::load(dir.path().join("missing")),
        Err(Error::Io(_))
    ));
}

/// Counts and sizes declared in the header far beyond the file are refused before anything
/// is allocated for them.
#[test]
fn declared_huge_lengths_are_refused() {
    let mut cfg = Config::new(60);
    cfg.embedding_dim = Some(4);
    let mut a = Archive::new(cfg).unwrap();
    for step in 0..20u64 {
        let parent = (step > 0).then_some(Id(step));
        a.add(
            &[b"p".as_slice(), b"qq"],
            &[step as f64, 0.5],
            Some(&[None, parent]),
            Some(&[1.0, 0.0, 0.0, 0.5, 0.0, 1.0, 0.0, 0.5]),
            step,
        )
        .unwrap();
    }
    a.forget_lineage(Id(10));
    let good = a.to_bytes();
    // Header words: 1 embedding_dim, 11 next_id, 12 residents, 13 payload bytes,
    // 17 lineage floor, 18 pinned lineage records.
    for word in [1, 11, 12, 13, 17, 18] {
        for value in [1u64 << 62, 1 << 40, u64::MAX] {
            let mut bad = good.clone();
            bad[16 + word * 8..16 + (word + 1) * 8].copy_from_slice(&value.to_le_bytes());
            for bytes in [bad.clone(), resealed(bad)] {
                assert!(
                    matches!(Archive::from_bytes(&bytes), Err(Error::Corrupt(_))),
                    "word {word} = {value}"
                );
            }
        }
    }
}

/// A snapshot over 8 MB (loaded with checksumming on a second thread where there are two
/// cores): round trip, and the embedding checks done while reading.
#[test]
fn large_snapshots_round_trip_and_refuse_bad_embeddings() {
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
        let mut flipped = good.clone();
        flipped[emb_start + 1_000_003] ^= 4;
        assert_eq!(corrupt_kind(&flipped), CorruptKind::Checksum);
        assert_eq!(
            corrupt_kind(&good[..good.len() - 5000]),
            CorruptKind::SizeMismatch
        );
        let bad_row = |row: usize, value: f32| {
            let mut bad = good.clone();
            let at = emb_start + (row * dim + 7) * 4;
            bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
            resealed(bad)
        };
        for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(corrupt_kind(&bad_row(n - 1, value)), CorruptKind::Embedding);
            assert_eq!(corrupt_kind(&bad_row(5, value)), CorruptKind::Embedding);
        }
        let mut zero_row = good.clone();
        zero_row[emb_start + 3 * dim * 4..emb_start + 4 * dim * 4].fill(0);
        let zero_row = resealed(zero_row);
        match metric {
            Metric::Cosine => assert_eq!(corrupt_kind(&zero_row), CorruptKind::Embedding),
            Metric::L2 => assert!(Archive::from_bytes(&zero_row).is_ok()),
        }
    }
}

/// Snapshots of every earlier version load; a version-4 file continues exactly as the
/// archive that wrote it would have (its next draws were recorded when it was written).
#[test]
fn older_versions_load_and_continue() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/snapshot_load");
    for (name, version) in [
        ("rank.snap", 1u32),
        ("prop_emb.snap", 1),
        ("pinned_v2.snap", 2),
        ("softmax_v3.snap", 3),
        ("softmax_v4.snap", 4),
        ("proportional_v4.snap", 4),
    ] {
        let bytes = std::fs::read(corpus.join(name)).unwrap();
        assert_eq!(bytes[8..12], version.to_le_bytes(), "{name}");
        let a = Archive::from_bytes(&bytes).unwrap();
        a.check_invariants();
        assert!(!a.is_empty(), "{name}");
        if version < 3 {
            // Written before admission rules: every entry was admitted.
            assert_eq!(a.stats().rejected, 0, "{name}");
            assert_eq!(a.config().admission, Admission::Always, "{name}");
        }
        let rewritten = a.to_bytes();
        assert_eq!(
            rewritten[8..12],
            5u32.to_le_bytes(),
            "{name} is rewritten as version 5"
        );
        let again = Archive::from_bytes(&rewritten).unwrap();
        assert_eq!(again.to_bytes(), rewritten);
    }
    for (name, next) in [
        ("softmax_v4.snap", [2, 2, 24, 5, 18, 5]),
        ("proportional_v4.snap", [2, 2, 24, 5, 26, 5]),
    ] {
        let mut a = Archive::load(corpus.join(name)).unwrap();
        assert_eq!(a.sample(6, 20).unwrap(), common::ids(&next), "{name}");
    }
}
