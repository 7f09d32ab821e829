//! Which entries a batch insertion evicts or rejects: a pure function of the scores, unit-tested
//! against one-at-a-time insertion.
//!
//! Entries compare by (score, id) with new ids above every resident's and ascending within the
//! batch. Inserting m entries one at a time into an archive of n residents and capacity c
//! evicts, when n + m > c, E = n + m − c entries in all, and both admission rules reduce to a
//! selection:
//! - `Always` (evict the lowest, never the entry being inserted): after the first eviction the
//!   c − 1 highest entries seen so far are always resident besides the newest, so the batch
//!   ends with the c − 1 highest of (residents + all new entries but the last) plus the last:
//!   the E lowest of (residents + new entries but the last) leave.
//! - `NotBelowMin` (enter only if not below the lowest, then evict it): each step keeps the c
//!   highest of what it has seen, so the E lowest of (residents + all new entries) leave. A
//!   new entry among them was either rejected on arrival (below the lowest resident of that
//!   moment) or admitted and evicted later; telling them apart replays only the low end.

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

/// Batch positions sorted by (score, position): ties keep insertion order.
fn by_score(scores: &[f64]) -> Vec<u32> {
    let mut keys: Vec<(u64, u32)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (ascending_bits(s), i as u32))
        .collect();
    keys.sort_unstable();
    keys.into_iter().map(|k| k.1).collect()
}

/// Plans inserting `scores` into `len` residents of capacity `capacity`. `lowest` holds the
/// scores of the lowest residents in eviction order (score ascending, then id ascending), at
/// least min(len, E + 1) of them where E = len + scores.len() − capacity.
pub(crate) fn plan(
    scores: &[f64],
    len: usize,
    capacity: usize,
    admission: Admission,
    lowest: &[f64],
) -> Plan {
    let m = scores.len();
    let order = by_score(scores);
    let overflow = (len + m).saturating_sub(capacity);
    if overflow == 0 {
        return Plan {
            survivors: (0..m as u32).collect(),
            ..Plan::default()
        };
    }
    debug_assert!(lowest.len() >= len.min(overflow + 1));
    // Merge residents and candidate new entries in ascending order and take `overflow` of
    // them; one more step of the merge gives the lowest survivor (for the replay below).
    let last = (m - 1) as u32;
    let candidates: Vec<u32> = match admission {
        Admission::Always => order.iter().copied().filter(|&i| i != last).collect(),
        Admission::NotBelowMin => order.clone(),
    };
    let mut removed_new = vec![false; m];
    let mut low_end: Vec<Option<u32>> = Vec::with_capacity(overflow + 1); // None: a resident
    let (mut a, mut b) = (0, 0);
    while low_end.len() <= overflow {
        let resident = lowest.get(a).map(|&s| ascending_bits(s));
        let new = candidates
            .get(b)
            .map(|&i| ascending_bits(scores[i as usize]));
        // On equal scores the resident goes first: its id is smaller.
        match (resident, new) {
            (Some(r), Some(x)) if r <= x => {
                low_end.push(None);
                a += 1;
            }
            (Some(_), None) => {
                low_end.push(None);
                a += 1;
            }
            (_, Some(_)) => {
                low_end.push(Some(candidates[b]));
                b += 1;
            }
            (None, None) => break,
        }
    }
    let victims = low_end[..overflow].iter().filter(|e| e.is_none()).count();
    for e in low_end[..overflow].iter().flatten() {
        removed_new[*e as usize] = true;
    }
    let removed = overflow - victims;
    let rejected = match admission {
        Admission::Always => 0,
        Admission::NotBelowMin => count_rejected(m, len, capacity, &low_end),
    };
    Plan {
        victims,
        survivors: (0..m as u32)
            .filter(|&i| !removed_new[i as usize])
            .collect(),
        rejected,
        evicted_new: removed - rejected,
    }
}

/// Replays `NotBelowMin` insertions on the low end only. `low_end` lists, ascending, the
/// entries that leave plus the lowest one that stays (None: a resident, Some(i): new entry i).
/// Every entry above it is admitted on arrival, and the archive's lowest entry is always in
/// `low_end` and only moves up once the archive is full, so one forward pointer tracks it.
fn count_rejected(m: usize, len: usize, capacity: usize, low_end: &[Option<u32>]) -> usize {
    const HIGH: u32 = u32::MAX;
    let mut position = vec![HIGH; m];
    for (q, e) in low_end.iter().enumerate() {
        if let Some(i) = e {
            position[*i as usize] = q as u32;
        }
    }
    let mut present: Vec<bool> = low_end.iter().map(|e| e.is_none()).collect();
    let mut size = len;
    let mut lowest: Option<usize> = None;
    let mut rejected = 0;
    for &q in &position {
        if size < capacity {
            if q != HIGH {
                present[q as usize] = true;
            }
            size += 1;
            continue;
        }
        let p =
            *lowest.get_or_insert_with(|| present.iter().position(|&x| x).expect("a lowest entry"));
        if q != HIGH && (q as usize) < p {
            rejected += 1;
            continue;
        }
        if q != HIGH {
            present[q as usize] = true;
        }
        present[p] = false;
        let next = p
            + 1
            + present[p + 1..]
                .iter()
                .position(|&x| x)
                .expect("a lowest entry");
        lowest = Some(next);
    }
    rejected
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
        for case in 0..4000 {
            let capacity = 1 + rng.below(12) as usize;
            let len = rng.below(capacity as u64 + 1) as usize;
            let m = rng.below(25) as usize;
            let levels = 1 + rng.below(6); // few distinct scores: many ties
            let mut draw = || rng.below(levels) as f64 - 1.0;
            let residents: Vec<f64> = (0..len).map(|_| draw()).collect();
            let scores: Vec<f64> = (0..m).map(|_| draw()).collect();
            // Residents in eviction order, as the archive would list them.
            let mut lowest: Vec<(f64, u64)> = residents
                .iter()
                .enumerate()
                .map(|(i, &s)| (s, i as u64))
                .collect();
            lowest.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            let lowest_scores: Vec<f64> = lowest.iter().map(|e| e.0).collect();
            for admission in [Admission::Always, Admission::NotBelowMin] {
                let plan = plan(&scores, len, capacity, admission, &lowest_scores);
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
