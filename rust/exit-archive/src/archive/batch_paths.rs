//! Both ways of applying a batch to the order index, per key (one descent) and in bulk (one
//! merge, O(n + batch)), give the same archive, byte for byte, after every operation; the
//! model test checks that the archive is one-at-a-time insertion whichever path is taken.

use proptest::prelude::*;

use crate::priorities::FORCE_BULK;
use crate::{Admission, Archive, Config, Id, Prioritization};

#[derive(Clone, Debug)]
enum Op {
    /// Scores (few levels: many ties) with a parent choice each.
    Add(Vec<(u8, bool)>),
    Update(Vec<(u8, u8)>),
    Sample(u8),
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec((0u8..6, any::<bool>()), 1..600).prop_map(Op::Add),
        2 => prop::collection::vec((any::<u8>(), 0u8..6), 1..200).prop_map(Op::Update),
        1 => (1u8..100).prop_map(Op::Sample),
        1 => any::<u8>().prop_map(Op::Remove),
    ]
}

/// The snapshot after each operation, with the bulk path forced on or off.
fn run(cfg: &Config, ops: &[Op], bulk: bool) -> Vec<Vec<u8>> {
    FORCE_BULK.with(|f| f.set(Some(bulk)));
    let mut a = Archive::new(cfg.clone()).unwrap();
    let mut out = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let step = step as u64;
        match op {
            Op::Add(items) => {
                let scores: Vec<f64> = items.iter().map(|x| x.0 as f64 / 4.0).collect();
                let parents: Vec<Option<Id>> = items
                    .iter()
                    .map(|x| (x.1 && a.next_id().0 > 0).then(|| Id(a.next_id().0 - 1)))
                    .collect();
                let payloads = vec![b"p".as_slice(); items.len()];
                a.add(&payloads, &scores, Some(&parents), None, step)
                    .unwrap();
            }
            Op::Update(changes) if !a.is_empty() => {
                let ids = a.ids();
                let (picked, scores): (Vec<Id>, Vec<f64>) = changes
                    .iter()
                    .map(|&(i, s)| (ids[i as usize % ids.len()], s as f64 / 3.0))
                    .unzip();
                a.update_scores(&picked, &scores).unwrap();
            }
            Op::Sample(k) if !a.is_empty() => {
                a.sample(*k as usize, step).unwrap();
            }
            Op::Remove(i) if !a.is_empty() => {
                let ids = a.ids();
                a.remove(&[ids[*i as usize % ids.len()]]).unwrap();
            }
            _ => {}
        }
        a.check_invariants();
        out.push(a.to_bytes());
    }
    FORCE_BULK.with(|f| f.set(None));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn bulk_and_per_key_paths_agree(
        capacity in prop_oneof![1usize..20, 100usize..700],
        prio in prop::sample::select(vec![
            Prioritization::Rank, Prioritization::Proportional, Prioritization::Softmax,
        ]),
        admission in prop::sample::select(vec![Admission::Always, Admission::NotBelowMin]),
        ops in prop::collection::vec(op(), 1..12),
    ) {
        let mut cfg = Config::new(capacity);
        cfg.prioritization = prio;
        cfg.admission = admission;
        cfg.staleness_coef = 0.2;
        prop_assert_eq!(run(&cfg, &ops, true), run(&cfg, &ops, false));
    }
}
