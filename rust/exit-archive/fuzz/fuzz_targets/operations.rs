//! Arbitrary operation sequences against a plain model of the resident set and scores.
#![no_main]

use exit_archive::{Admission, Archive, Config, Id, Prioritization};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [head, modes, ops @ ..] = data else {
        return;
    };
    let mut cfg = Config::new(1 + (*head as usize % 16));
    cfg.prioritization = match modes % 3 {
        0 => Prioritization::Rank,
        1 => Prioritization::Proportional,
        _ => Prioritization::Softmax,
    };
    cfg.admission = if modes & 0x10 != 0 {
        Admission::NotBelowMin
    } else {
        Admission::Always
    };
    cfg.temperature = [1.0, 0.5, 3.0, 0.01][(modes >> 5 & 0x3) as usize];
    cfg.staleness_coef = (head >> 4 & 0x3) as f64 / 3.0;
    let (capacity, admission, prio) = (cfg.capacity, cfg.admission, cfg.prioritization);
    // Softmax takes any finite score: include gaps far beyond exp()'s range.
    let score_of = |x: u8| match (prio, x) {
        (Prioritization::Softmax, 5) => -800.0,
        (Prioritization::Softmax, 6) => 1e5,
        (Prioritization::Softmax, 8) => -1e300,
        _ => x as f64,
    };
    let mut a = Archive::new(cfg).unwrap();
    let mut model: Vec<(Id, f64)> = Vec::new();
    let mut rejected = 0u64;
    let mut step = 0u64;
    for chunk in ops.chunks(3) {
        let [op, x, y] = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        match op % 6 {
            0 => {
                let n = 1 + x as usize % 8;
                let scores: Vec<f64> = (0..n)
                    .map(|i| score_of(((y as usize + i * 3) % 7) as u8))
                    .collect();
                let parent = match a.next_id().get() {
                    0 => None,
                    next => {
                        let p = Id(y as u64 % next);
                        // Forgotten ids (evicted below the lineage floor) cannot be parents.
                        a.lineage(&[p]).is_ok().then_some(p)
                    }
                };
                let parents = vec![parent; n];
                let payloads: Vec<&[u8]> = vec![&chunk[..]; n];
                let ids = a
                    .add(&payloads, &scores, Some(&parents), None, step)
                    .unwrap();
                for (id, s) in ids.into_iter().zip(scores) {
                    if model.len() == capacity {
                        let victim = (0..model.len())
                            .min_by(|&i, &j| {
                                model[i]
                                    .1
                                    .total_cmp(&model[j].1)
                                    .then(model[i].0.cmp(&model[j].0))
                            })
                            .unwrap();
                        if admission == Admission::NotBelowMin && s < model[victim].1 {
                            rejected += 1;
                            continue;
                        }
                        model.remove(victim);
                    }
                    model.push((id, s));
                }
            }
            1 if !model.is_empty() => {
                let j = x as usize % model.len();
                model[j].1 = score_of(y % 9);
                a.update_scores(&[model[j].0], &[model[j].1]).unwrap();
            }
            2 if !model.is_empty() => {
                let (id, _) = model.remove(x as usize % model.len());
                a.remove(&[id]).unwrap();
            }
            3 if !model.is_empty() => {
                step += y as u64 % 3;
                for id in a.sample(x as usize % 16, step).unwrap() {
                    assert!(model.iter().any(|m| m.0 == id));
                }
            }
            4 => {
                a = Archive::from_bytes(&a.to_bytes()).unwrap();
            }
            5 if x & 1 == 0 => {
                let floor = a.forget_lineage(Id(a.next_id().get() * y as u64 / 255));
                for id in (0..a.next_id().get()).map(Id) {
                    let resident = model.iter().any(|m| m.0 == id);
                    assert_eq!(a.lineage(&[id]).is_ok(), id >= floor || resident);
                }
            }
            _ => {
                // Invalid inputs must fail and change nothing.
                let before = a.to_bytes();
                assert!(a.add(&[b"x"], &[f64::NAN], None, None, 0).is_err());
                assert!(a.update_scores(&[Id(u64::MAX)], &[1.0]).is_err());
                assert_eq!(a.to_bytes(), before);
            }
        }
        a.check_invariants();
        assert_eq!(a.stats().rejected, rejected);
        let mut ids: Vec<Id> = model.iter().map(|m| m.0).collect();
        ids.sort_unstable();
        assert_eq!(a.ids(), ids);
    }
});
