//! Random operation sequences against a plain model of the contract: residents with their
//! scores and last steps, one-at-a-time insertion under both admission rules, lineage, and
//! the sampling law computed from the model's own values after every operation.

mod common;

use std::collections::BTreeMap;

use common::expected_law;
use exit_archive::{Admission, Archive, Config, Id, Prioritization};
use proptest::prelude::*;

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

/// A resident of the model.
#[derive(Clone, Copy, Debug)]
struct Entry {
    score: f64,
    last_step: u64,
    times_sampled: u64,
}

#[derive(Default)]
struct Model {
    capacity: usize,
    admission: Option<Admission>,
    residents: BTreeMap<u64, Entry>,
    /// id -> (parent, root, depth) of ids whose lineage is kept.
    lineage: BTreeMap<u64, (Option<u64>, u64, u32)>,
    next: u64,
    rejected: u64,
    evicted: u64,
}

impl Model {
    fn add(&mut self, score: f64, parent: Option<u64>, step: u64) {
        let id = self.next;
        self.next += 1;
        let record = match parent {
            None => (None, id, 0),
            Some(p) => {
                let (_, root, depth) = self.lineage[&p];
                (Some(p), root, depth + 1)
            }
        };
        self.lineage.insert(id, record);
        if self.residents.len() == self.capacity {
            let (&victim, lowest) = self
                .residents
                .iter()
                .min_by(|x, y| x.1.score.total_cmp(&y.1.score).then(x.0.cmp(y.0)))
                .unwrap();
            if self.admission == Some(Admission::NotBelowMin) && score < lowest.score {
                self.rejected += 1;
                return;
            }
            self.residents.remove(&victim);
            self.evicted += 1;
        }
        let fresh = Entry {
            score,
            last_step: step,
            times_sampled: 0,
        };
        self.residents.insert(id, fresh);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Capacities of a few hundred exercise the per-key paths of add and update, small ones
    /// the bulk (merge) paths.
    #[test]
    fn behaves_like_the_model(
        capacity in prop_oneof![1usize..12, 256usize..300],
        prio in prop::sample::select(vec![
            Prioritization::Rank, Prioritization::Proportional, Prioritization::Softmax,
        ]),
        admission in prop::sample::select(vec![Admission::Always, Admission::NotBelowMin]),
        staleness in prop::sample::select(vec![0.0, 0.25, 1.0]),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut cfg = Config::new(capacity);
        cfg.prioritization = prio;
        cfg.admission = admission;
        cfg.staleness_coef = staleness;
        cfg.temperature = 0.5;
        let mut a = Archive::new(cfg).unwrap();
        // Softmax takes any score; gaps of hundreds of temperatures need the shifted weights.
        let score_of = |x: u8| match (prio, x) {
            (Prioritization::Softmax, 7) => 900.0,
            (Prioritization::Softmax, 6) => -700.0,
            _ => x as f64 / 4.0,
        };
        let mut m = Model { capacity, admission: Some(admission), ..Model::default() };
        let mut step = 0u64;
        for op in ops {
            match op {
                Op::Add(items) => {
                    let scores: Vec<f64> = items.iter().map(|x| score_of(x.0)).collect();
                    let parents: Vec<Option<Id>> = items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| {
                            let known = m.next + i as u64;
                            let p = x.1.filter(|_| known > 0)? as u64 % known.max(1);
                            // Forgotten ids cannot be parents.
                            (p >= m.next || m.lineage.contains_key(&p)).then_some(Id(p))
                        })
                        .collect();
                    let payloads: Vec<&[u8]> = vec![b"x".as_slice(); items.len()];
                    let got = a.add(&payloads, &scores, Some(&parents), None, step).unwrap();
                    for ((id, s), p) in got.into_iter().zip(scores).zip(&parents) {
                        prop_assert_eq!(id, Id(m.next));
                        m.add(s, p.map(|p| p.0), step);
                    }
                }
                Op::Update(i, s) if !m.residents.is_empty() => {
                    // A run of entries with a repeat: the last score of a repeated id wins.
                    let keys: Vec<u64> = m.residents.keys().copied().collect();
                    let count = 1 + (i as usize % 16);
                    let mut ids = Vec::new();
                    let mut scores = Vec::new();
                    for k in 0..count {
                        let id = keys[(i as usize * 7 + k * 13) % keys.len()];
                        ids.push(Id(id));
                        scores.push(score_of(((s as usize + k) % 8) as u8));
                    }
                    ids.push(ids[0]);
                    scores.push(score_of(s % 8));
                    for (id, s) in ids.iter().zip(&scores) {
                        m.residents.get_mut(&id.0).unwrap().score = *s;
                    }
                    a.update_scores(&ids, &scores).unwrap();
                }
                Op::Remove(i) if !m.residents.is_empty() => {
                    let id = *m.residents.keys().nth(i as usize % m.residents.len()).unwrap();
                    m.residents.remove(&id);
                    a.remove(&[Id(id)]).unwrap();
                }
                Op::Sample(k) if !m.residents.is_empty() => {
                    step += 1;
                    for id in a.sample(k as usize, step).unwrap() {
                        let e = m.residents.get_mut(&id.0);
                        prop_assert!(e.is_some(), "drew non-resident {id}");
                        let e = e.unwrap();
                        e.last_step = step;
                        e.times_sampled += 1;
                    }
                }
                Op::Forget(f) => {
                    let floor = a.forget_lineage(Id(m.next * f as u64 / 255)).0;
                    prop_assert!(floor <= m.next);
                    let gone: Vec<u64> = m.lineage.keys().copied()
                        .filter(|id| *id < floor && !m.residents.contains_key(id))
                        .collect();
                    for id in gone {
                        m.lineage.remove(&id);
                    }
                }
                Op::Reload => {
                    let b = Archive::from_bytes(&a.to_bytes()).unwrap();
                    prop_assert_eq!(b.to_bytes(), a.to_bytes());
                    a = b;
                }
                _ => {}
            }
            // Lineage below the floor lives exactly as long as its entry stays resident.
            let floor = a.lineage_floor().0;
            m.lineage.retain(|id, _| *id >= floor || m.residents.contains_key(id));
            a.check_invariants();
            let s = a.stats();
            prop_assert_eq!((s.rejected, s.evicted, s.next_id), (m.rejected, m.evicted, Id(m.next)));
            let ids: Vec<Id> = m.residents.keys().map(|&i| Id(i)).collect();
            prop_assert_eq!(a.ids(), ids.clone());
            let info = a.info(&ids).unwrap();
            for (e, (id, want)) in info.iter().zip(&m.residents) {
                prop_assert_eq!((e.score, e.last_step, e.times_sampled),
                    (want.score, want.last_step, want.times_sampled), "id {}", id);
            }
            for (id, &(parent, root, depth)) in &m.lineage {
                let l = a.lineage(&[Id(*id)]).unwrap()[0];
                prop_assert_eq!((l.parent.map(|p| p.0), l.root.0, l.depth), (parent, root, depth));
            }
            for id in 0..m.next {
                prop_assert_eq!(a.lineage(&[Id(id)]).is_ok(), m.lineage.contains_key(&id));
            }
            if !ids.is_empty() {
                let residents: Vec<(u64, f64, u64)> =
                    m.residents.iter().map(|(&i, e)| (i, e.score, e.last_step)).collect();
                let want = expected_law(&residents, step, prio, 0.5, staleness);
                let got = a.probabilities(step).unwrap();
                for ((_, g), w) in got.iter().zip(&want) {
                    prop_assert!((g - w).abs() <= 1e-9 * w + 1e-180, "{} vs {}", g, w);
                }
            }
        }
    }
}
