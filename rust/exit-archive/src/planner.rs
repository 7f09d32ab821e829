//! Which entries a batch insertion evicts or rejects: inserting the entries one at a time,
//! simulated on the low end of the archive only. A pure function of the scores, unit-tested
//! against a plain one-at-a-time insertion.
//!
//! Members compare by (score, id), and a new entry's id is above every resident's and above
//! the earlier entries of its batch. The lowest member of a full archive is either the next
//! resident in eviction order (read lazily, only as far as insertions evict) or the lowest of
//! the new entries admitted so far (a min-heap). Each insertion then costs O(1) when it is
//! rejected and O(log m) otherwise, whatever the archive's size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::iter::Peekable;

use crate::config::Admission;
use crate::priorities::ascending_bits;

/// The outcome of inserting a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// How many of the lowest residents (in eviction order) are evicted.
    pub victims: usize,
    /// Batch positions of the new entries that end resident, ascending.
    pub survivors: Vec<u32>,
    /// New entries refused on arrival (`NotBelowMin` only).
    pub rejected: usize,
    /// New entries admitted and then evicted within the batch.
    pub evicted_new: usize,
}

/// Plans inserting `scores` into `len` residents of capacity `capacity`; `residents` yields
/// the residents' scores lowest first (score ascending, then id ascending).
pub(crate) fn plan(
    scores: &[f64],
    len: usize,
    capacity: usize,
    admission: Admission,
    residents: impl Iterator<Item = f64>,
) -> Plan {
    let m = scores.len();
    if len + m <= capacity {
        return Plan {
            survivors: (0..m as u32).collect(),
            ..Plan::default()
        };
    }
    let residents = residents.map(ascending_bits).peekable();
    match admission {
        Admission::Always => plan_always(scores, len, capacity, residents),
        Admission::NotBelowMin => plan_not_below_min(scores, len, capacity, residents),
    }
}

/// `Always`: the batch ends with the capacity − 1 highest of the residents and all new
/// entries but the last, plus the last. The new entries among them are the highest ones, so
/// they are taken highest first, each displacing the lowest resident left while it outranks
/// it; only the entries that end resident are sorted.
fn plan_always(
    scores: &[f64],
    len: usize,
    capacity: usize,
    mut residents: Peekable<impl Iterator<Item = u64>>,
) -> Plan {
    let m = scores.len();
    let places = capacity - 1;
    let mut plan = Plan::default();
    // Residents beyond the places leave whatever comes (the last entry takes one).
    while len - plan.victims > places {
        residents.next();
        plan.victims += 1;
    }
    let mut kept = 0;
    for (score_bits, i) in descending(&scores[..m - 1]) {
        if len - plan.victims + kept >= places {
            // Equal scores: the resident is lower (its id is smaller) and leaves.
            match residents.peek() {
                Some(&r) if score_bits >= r => {
                    residents.next();
                    plan.victims += 1;
                }
                _ => break,
            }
        }
        plan.survivors.push(i);
        kept += 1;
    }
    plan.evicted_new = m - 1 - kept;
    plan.survivors.push(m as u32 - 1);
    plan.survivors.sort_unstable();
    plan
}

/// Batch positions by descending (score, position), lazily: the highest are selected and
/// sorted in growing groups, so that taking k of m entries costs O(m + k log k) per group.
fn descending(scores: &[f64]) -> impl Iterator<Item = (u64, u32)> + '_ {
    let mut keys: Vec<(u64, u32)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (ascending_bits(s), i as u32))
        .collect();
    // keys[..sorted] are the highest, in descending order; keys[next] is handed out next.
    let (mut sorted, mut next, mut group) = (0, 0, 64);
    std::iter::from_fn(move || {
        if next == keys.len() {
            return None;
        }
        if next == sorted {
            let rest = &mut keys[sorted..];
            let take = group.min(rest.len());
            if take < rest.len() {
                rest.select_nth_unstable_by(take - 1, |a, b| b.cmp(a));
            }
            rest[..take].sort_unstable_by(|a, b| b.cmp(a));
            sorted += take;
            group *= 4;
        }
        next += 1;
        Some(keys[next - 1])
    })
}

/// `NotBelowMin`: each entry enters only if its score is at least the lowest member's, and
/// then evicts that member. Simulated one entry at a time on the low end: the lowest member
/// is the next resident in eviction order or the lowest new entry admitted so far (a
/// min-heap), so a rejection costs O(1) and an admission O(log m).
fn plan_not_below_min(
    scores: &[f64],
    len: usize,
    capacity: usize,
    mut residents: Peekable<impl Iterator<Item = u64>>,
) -> Plan {
    let mut admitted: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::with_capacity(scores.len());
    let mut plan = Plan::default();
    let mut size = len;
    for (i, &score) in scores.iter().enumerate() {
        let key = (ascending_bits(score), i as u32);
        if size < capacity {
            size += 1;
        } else {
            // On equal scores the resident is lower: its id is smaller.
            let resident = residents.peek().copied();
            let newest = admitted.peek().map(|low| low.0 .0);
            let from_residents = match (resident, newest) {
                (Some(r), Some(n)) => r <= n,
                (r, _) => r.is_some(),
            };
            let lowest = if from_residents { resident } else { newest };
            if lowest.is_some_and(|lowest| key.0 < lowest) {
                plan.rejected += 1;
                continue;
            }
            if from_residents {
                residents.next();
                plan.victims += 1;
            } else {
                admitted.pop();
                plan.evicted_new += 1;
            }
        }
        admitted.push(Reverse(key));
    }
    plan.survivors = admitted.into_iter().map(|low| low.0 .1).collect();
    plan.survivors.sort_unstable();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// One-at-a-time insertion, written plainly: (resident ids, rejected, evicted new).
    fn naive(
        resident_scores: &[f64],
        scores: &[f64],
        capacity: usize,
        admission: Admission,
    ) -> (Vec<u64>, usize, usize) {
        let mut set: Vec<(f64, u64)> = resident_scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, i as u64))
            .collect();
        let first = resident_scores.len() as u64;
        let (mut rejected, mut evicted_new) = (0, 0);
        for (j, &s) in scores.iter().enumerate() {
            let id = first + j as u64;
            if set.len() == capacity {
                let k = (0..set.len())
                    .min_by(|&x, &y| set[x].0.total_cmp(&set[y].0).then(set[x].1.cmp(&set[y].1)))
                    .unwrap();
                if admission == Admission::NotBelowMin && s < set[k].0 {
                    rejected += 1;
                    continue;
                }
                if set[k].1 >= first {
                    evicted_new += 1;
                }
                set.remove(k);
            }
            set.push((s, id));
        }
        let mut ids: Vec<u64> = set.into_iter().map(|e| e.1).collect();
        ids.sort_unstable();
        (ids, rejected, evicted_new)
    }

    #[test]
    fn matches_one_at_a_time_insertion() {
        let mut rng = Rng::new(5);
        for case in 0..6000 {
            let capacity = 1 + rng.below(12) as usize;
            let len = rng.below(capacity as u64 + 1) as usize;
            let m = if case % 10 == 0 {
                100 + rng.below(200) as usize
            } else {
                rng.below(25) as usize
            };
            let levels = 1 + rng.below(6); // few distinct scores: many ties
            let shift = rng.below(3) as f64; // new entries often below every resident
            let mut draw = |offset: f64| rng.below(levels) as f64 - 1.0 - offset;
            let residents: Vec<f64> = (0..len).map(|_| draw(0.0)).collect();
            let scores: Vec<f64> = (0..m).map(|_| draw(shift)).collect();
            // Residents in eviction order, as the archive lists them.
            let mut lowest: Vec<(f64, u64)> = residents
                .iter()
                .enumerate()
                .map(|(i, &s)| (s, i as u64))
                .collect();
            lowest.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            for admission in [Admission::Always, Admission::NotBelowMin] {
                let plan = plan(
                    &scores,
                    len,
                    capacity,
                    admission,
                    lowest.iter().map(|e| e.0),
                );
                let (expected, rejected, evicted_new) =
                    naive(&residents, &scores, capacity, admission);
                let mut got: Vec<u64> = lowest[plan.victims..].iter().map(|e| e.1).collect();
                got.extend(plan.survivors.iter().map(|&i| len as u64 + i as u64));
                got.sort_unstable();
                assert_eq!(got, expected, "case {case} {admission:?}");
                assert_eq!(
                    (plan.rejected, plan.evicted_new),
                    (rejected, evicted_new),
                    "case {case}"
                );
                assert!(plan.survivors.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
