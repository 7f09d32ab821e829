//! Snapshot mutations with the checksum recomputed, so that every check past the checksum is
//! reached: each header word and each column element (first, middle, last) is set to values
//! at and around every boundary. A mutated file must either be refused as corrupt, or load
//! into a consistent archive on which every operation works or fails cleanly (no panic,
//! counters that only grow), and which saves and loads again unchanged.

use super::format::{count, sections, Col, Header, Word, HEADER, PREFIX_LEN, TRAILER_LEN};
use crate::config::{Admission, Config, Prioritization};
use crate::error::{CorruptKind, Error};
use crate::id::Id;
use crate::novelty::Metric;
use crate::Archive;

/// Archives whose snapshots hold every section: lineage below and above a floor, pinned
/// records, embeddings, removed and sampled entries, each weighted mode.
fn snapshots() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (mode, metric) in [
        (Prioritization::Rank, Metric::Cosine),
        (Prioritization::Proportional, Metric::L2),
        (Prioritization::Softmax, Metric::Cosine),
    ] {
        let mut cfg = Config::new(6);
        cfg.prioritization = mode;
        cfg.metric = metric;
        cfg.embedding_dim = Some(3);
        cfg.staleness_coef = 0.3;
        cfg.temperature = 0.5;
        cfg.admission = Admission::NotBelowMin;
        cfg.max_payload_bytes = 64;
        let mut a = Archive::new(cfg).unwrap();
        for step in 0..8u64 {
            let scores = [step as f64 * 0.5, 0.25, 3.0 - step as f64 * 0.25];
            let parents = [
                None,
                step.checked_mul(3).and_then(|p| p.checked_sub(1)).map(Id),
                None,
            ];
            let rows = [1.0, 2.0, step as f32, 0.5, 0.0, 1.0, 3.0, 1.0, 1.0];
            a.add(
                &[b"a".as_slice(), b"bb", b"ccc"],
                &scores,
                Some(&parents),
                Some(&rows),
                step,
            )
            .unwrap();
            a.sample(2, step).unwrap();
        }
        a.forget_lineage(Id(a.next_id().0 - 4));
        a.remove(&[a.ids()[1]]).unwrap();
        a.check_invariants();
        out.push(a.to_bytes());
    }
    out
}

/// Recomputes the trailer (checksum and length) of a mutated file.
pub(crate) fn reseal(bytes: &mut [u8]) {
    let body = bytes.len() - TRAILER_LEN;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..body + 4].copy_from_slice(&crc.to_le_bytes());
    let len = bytes.len() as u64;
    bytes[body + 4..].copy_from_slice(&len.to_le_bytes());
}

fn header_of(bytes: &[u8]) -> Header {
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let mut words = [0u64; HEADER.len()];
    let mut at = PREFIX_LEN;
    for (i, (_, since)) in HEADER.iter().enumerate() {
        if *since <= version {
            words[i] = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
            at += 8;
        }
    }
    Header { version, words }
}

/// Byte offset of header word `w`.
fn word_offset(w: Word) -> usize {
    PREFIX_LEN + 8 * HEADER.iter().position(|(x, _)| *x == w).unwrap()
}

/// (column, byte offset, element size, element count) of every section.
fn columns(bytes: &[u8]) -> Vec<(Col, usize, usize, usize)> {
    let h = header_of(bytes);
    let mut at = PREFIX_LEN + Header::len_in_file(h.version);
    sections(h.version)
        .map(|s| {
            let n = count(&h, s.count).unwrap() as usize;
            let size = s.elem.size() as usize;
            let here = (s.col, at, size, n);
            at += n * size;
            here
        })
        .collect()
}

const U64_VALUES: [u64; 16] = [
    0,
    1,
    2,
    3,
    u32::MAX as u64,
    1 << 32,
    1 << 53,
    (1 << 62) + 5,
    (1 << 63) - 1,
    1 << 63,
    (1 << 63) + 1,
    u64::MAX - 1,
    u64::MAX,
    0x7ff8_0000_0000_0000, // NaN
    0x7ff0_0000_0000_0000, // inf
    0xbff0_0000_0000_0000, // -1.0
];

fn u64_values(old: u64) -> Vec<u64> {
    let mut v = U64_VALUES.to_vec();
    v.extend([old.wrapping_add(1), old.wrapping_sub(1), old ^ (1 << 63)]);
    let f = f64::from_bits(old);
    if f.is_finite() {
        v.extend([(f * 2.0).to_bits(), (-f).to_bits(), (f + 1e300).to_bits()]);
    }
    v
}

fn u32_values(old: u32) -> Vec<u32> {
    vec![
        0,
        1,
        2,
        old.wrapping_add(1),
        old.wrapping_sub(1),
        u32::MAX - 1,
        u32::MAX,
        0x7fc0_0000, // f32 NaN
        0x7f80_0000, // f32 inf
        0x7f7f_ffff, // f32 max
    ]
}

/// Every mutation: (what, bytes).
fn mutations(good: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut put = |what: String, at: usize, value: &[u8]| {
        let mut bad = good.to_vec();
        bad[at..at + value.len()].copy_from_slice(value);
        reseal(&mut bad);
        out.push((what, bad));
    };
    for (w, _) in HEADER {
        let at = word_offset(w);
        let old = u64::from_le_bytes(good[at..at + 8].try_into().unwrap());
        for v in u64_values(old) {
            put(format!("header {w:?} = {v:#x}"), at, &v.to_le_bytes());
        }
    }
    for (col, start, size, n) in columns(good) {
        for i in [0, n / 2, n.saturating_sub(1)] {
            if i >= n {
                continue;
            }
            let at = start + i * size;
            match size {
                8 => {
                    let old = u64::from_le_bytes(good[at..at + 8].try_into().unwrap());
                    for v in u64_values(old) {
                        put(format!("{col:?}[{i}] = {v:#x}"), at, &v.to_le_bytes());
                    }
                }
                4 => {
                    let old = u32::from_le_bytes(good[at..at + 4].try_into().unwrap());
                    for v in u32_values(old) {
                        put(format!("{col:?}[{i}] = {v:#x}"), at, &v.to_le_bytes());
                    }
                }
                _ => {
                    for v in [0u8, 0x80, 0xff] {
                        put(format!("{col:?}[{i}] = {v:#x}"), at, &[v]);
                    }
                }
            }
        }
    }
    out
}

/// Every operation on a loaded archive: each works or fails with an error (never a panic),
/// counters never move back, and the archive stays consistent and round-trips.
pub(crate) fn exercise(mut a: Archive) {
    a.check_invariants();
    let before = a.stats();
    let again = Archive::from_bytes(&a.to_bytes()).expect("its own snapshot loads");
    assert_eq!(again.to_bytes(), a.to_bytes());
    let dim = a.config().embedding_dim.unwrap_or(0);
    let m = 4;
    let known: Vec<Option<Id>> = (a.lineage_floor().0..a.next_id().0)
        .rev()
        .take(m)
        .map(|id| Some(Id(id)))
        .collect();
    let mut parents = vec![None; m];
    parents[..known.len()].copy_from_slice(&known);
    let rows = vec![0.5f32; m * dim];
    let payloads = vec![b"new".as_slice(); m];
    let scores = [0.0, 1.0, 1e6, -3.0];
    let step = a.max_last_step();
    let _ = a.add(&payloads, &scores, Some(&parents), Some(&rows), step);
    let _ = a.add(&payloads, &[2.0; 4], None, Some(&[]), step);
    let _ = a.add(&payloads, &[2.0; 4], None, None, step);
    a.check_invariants();
    let ids = a.ids();
    if let Ok(drawn) = a.sample(5, step.saturating_add(1)) {
        assert_eq!(drawn.len(), 5);
        let info = a.info(&drawn).expect("drawn ids are resident");
        assert!(info.iter().all(|e| e.times_sampled >= 1));
    }
    let _ = a.update_scores(&ids, &vec![0.75; ids.len()]);
    let _ = a.probabilities(a.max_last_step());
    if dim > 0 {
        let _ = a.novelty(&vec![1.0; dim], 3);
    }
    if let Some(&first) = ids.first() {
        let _ = a.remove(&[first]);
        let _ = a.lineage(&[first]);
    }
    a.forget_lineage(a.next_id());
    a.check_invariants();
    let after = a.stats();
    assert!(after.evicted >= before.evicted && after.rejected >= before.rejected);
    assert!(after.removed >= before.removed && after.sampled >= before.sampled);
    assert!(after.next_id >= before.next_id);
    let bytes = a.to_bytes();
    let back = Archive::from_bytes(&bytes).expect("its own snapshot loads");
    assert_eq!(back.to_bytes(), bytes);
}

#[test]
fn every_field_mutated_is_refused_or_loads_consistent() {
    let mut loaded = 0;
    let mut refused = 0;
    for good in snapshots() {
        // Every section has elements, so that every column is mutated.
        assert!(columns(&good).iter().all(|c| c.3 > 0));
        for (what, bad) in mutations(&good) {
            let result = std::panic::catch_unwind(|| match Archive::from_bytes(&bad) {
                Ok(a) => {
                    exercise(a);
                    true
                }
                Err(Error::Corrupt(_)) => false,
                Err(other) => panic!("not a corrupt-file error: {other:?}"),
            });
            match result {
                Ok(true) => {
                    if std::env::var("SHOW_LOADED").is_ok() {
                        eprintln!("loaded: {what}");
                    }
                    loaded += 1
                }
                Ok(false) => refused += 1,
                Err(_) => panic!("{what}: panicked"),
            }
        }
    }
    // Some mutations are legal (a seed, a counter, a payload byte, another capacity).
    assert!(
        refused > 0 && loaded > 0,
        "refused {refused}, loaded {loaded}"
    );
}

/// The refusals that keep later operations safe, each with its reason.
#[test]
fn out_of_range_fields_are_refused() {
    let good = &snapshots()[1]; // proportional
    let set = |w: Word, v: u64| {
        let mut bad = good.clone();
        let at = word_offset(w);
        bad[at..at + 8].copy_from_slice(&v.to_le_bytes());
        reseal(&mut bad);
        bad
    };
    let kind = |bytes: &[u8]| match Archive::from_bytes(bytes) {
        Err(Error::Corrupt(kind)) => Some(kind),
        Err(other) => panic!("not corrupt: {other:?}"),
        Ok(_) => None,
    };
    let h = header_of(good);
    let (next, floor) = (h.get(Word::NextId), h.get(Word::LineageFloor));
    // The id limit: a next id of 2^63 + 1 with the same number of lineage records.
    let mut far = set(Word::NextId, (1 << 63) + 1);
    let at = word_offset(Word::LineageFloor);
    far[at..at + 8].copy_from_slice(&((1u64 << 63) + 1 - (next - floor)).to_le_bytes());
    reseal(&mut far);
    assert_eq!(kind(&far), Some(CorruptKind::IdLimit));
    // A dimension far beyond the limit (only meaningful with no residents: sizes must match).
    let empty = {
        let mut cfg = Config::new(4);
        cfg.embedding_dim = Some(3);
        Archive::new(cfg).unwrap().to_bytes()
    };
    let mut wide = empty.clone();
    let at = word_offset(Word::EmbeddingDim);
    wide[at..at + 8].copy_from_slice(&(1u64 << 61).to_le_bytes());
    reseal(&mut wide);
    assert!(matches!(kind(&wide), Some(CorruptKind::Config(_))));
    // The weight reference of proportional mode: positive, finite, near the top score.
    for bad in [0.0f64, -1.0, f64::NAN, f64::INFINITY, 1e-300] {
        assert_eq!(
            kind(&set(Word::WeightRef, bad.to_bits())),
            Some(CorruptKind::WeightReference),
            "{bad}"
        );
    }
    // A last step before the added step.
    let (_, added, _, n) = columns(good)
        .into_iter()
        .find(|c| c.0 == Col::AddedStep)
        .unwrap();
    assert!(n > 0);
    let mut early = good.clone();
    let added_step = u64::from_le_bytes(good[added..added + 8].try_into().unwrap());
    early[added..added + 8].copy_from_slice(&(added_step + 100).to_le_bytes());
    reseal(&mut early);
    assert_eq!(kind(&early), Some(CorruptKind::Steps));
}

/// A chain of ids at the id limit: the add that would pass it fails and changes nothing.
#[test]
fn ids_never_pass_the_limit() {
    let empty = Archive::new(Config::new(4)).unwrap().to_bytes();
    let mut at_limit = empty.clone();
    for w in [Word::NextId, Word::LineageFloor] {
        let at = word_offset(w);
        at_limit[at..at + 8].copy_from_slice(&(crate::config::ID_LIMIT - 2).to_le_bytes());
    }
    reseal(&mut at_limit);
    let mut a = Archive::from_bytes(&at_limit).unwrap();
    let ids = a
        .add(&[b"a".as_slice(), b"b"], &[1.0, 2.0], None, None, 0)
        .unwrap();
    assert_eq!(
        ids,
        vec![
            Id(crate::config::ID_LIMIT - 2),
            Id(crate::config::ID_LIMIT - 1)
        ]
    );
    let before = a.to_bytes();
    assert!(matches!(
        a.add(&[b"c".as_slice()], &[1.0], None, None, 0),
        Err(Error::Invalid(_))
    ));
    assert_eq!(a.to_bytes(), before);
    a.check_invariants();
}

/// A record of maximal depth whose parent was forgotten loads; its child would overflow the
/// depth, so adding it fails and changes nothing.
#[test]
fn depth_never_overflows() {
    let mut a = Archive::new(Config::new(1)).unwrap();
    a.add(&[b"a".as_slice()], &[1.0], None, None, 0).unwrap();
    a.add(&[b"b".as_slice()], &[2.0], None, None, 0).unwrap();
    a.add(&[b"c".as_slice()], &[3.0], Some(&[Some(Id(1))]), None, 0)
        .unwrap();
    a.forget_lineage(Id(2));
    let mut bytes = a.to_bytes();
    let (_, start, _, n) = columns(&bytes)
        .into_iter()
        .find(|c| c.0 == Col::Depth)
        .unwrap();
    assert_eq!(n, 1);
    bytes[start..start + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    reseal(&mut bytes);
    let mut deep = Archive::from_bytes(&bytes).unwrap();
    assert_eq!(deep.lineage(&[Id(2)]).unwrap()[0].depth, u32::MAX);
    let before = deep.to_bytes();
    assert!(matches!(
        deep.add(&[b"d".as_slice()], &[4.0], Some(&[Some(Id(2))]), None, 0),
        Err(Error::Invalid(_))
    ));
    assert_eq!(deep.to_bytes(), before);
}
