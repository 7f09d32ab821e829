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
//!
//! The residents are read lowest first and only as far as needed. New entries below every
//! resident need no sorting: they leave before any resident, so a selection finds which.

use crate::config::Admission;
use crate::priorities::{ascending_bits, sort_by_score};

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
    let overflow = (len + m).saturating_sub(capacity);
    if overflow == 0 {
        return Plan {
            survivors: (0..m as u32).collect(),
            ..Plan::default()
        };
    }
    let mut residents = residents.peekable();
    let lowest_resident = residents.peek().map(|&s| ascending_bits(s));
    let below_all = |i: usize| lowest_resident.map_or(true, |r| ascending_bits(scores[i]) < r);
    let mut removed = vec![false; m];
    let mut rejected = 0;
    let mut candidates: Vec<u32> = Vec::with_capacity(m);
    match admission {
        Admission::Always => {
            // The E lowest of residents and new entries but the last leave. When enough new
            // entries lie below every resident, they are exactly the E lowest of those.
            let low: Vec<u32> = (0..m as u32 - 1)
                .filter(|&i| below_all(i as usize))
                .collect();
            if low.len() >= overflow {
                let mut keyed: Vec<(u64, u32)> = low
                    .iter()
                    .map(|&i| (ascending_bits(scores[i as usize]), i))
                    .collect();
                if overflow < keyed.len() {
                    keyed.select_nth_unstable(overflow - 1);
                }
                for &(_, i) in &keyed[..overflow] {
                    removed[i as usize] = true;
                }
                return finish(m, 0, removed, 0, overflow);
            }
            candidates.extend((0..m as u32 - 1).filter(|&i| !below_all(i as usize)));
            for &i in &low {
                removed[i as usize] = true;
            }
            let taken = merge(scores, &candidates, &mut residents, overflow - low.len());
            let victims = taken.iter().filter(|e| e.is_none()).count();
            for i in taken.iter().flatten() {
                removed[*i as usize] = true;
            }
            finish(m, victims, removed, 0, overflow - victims)
        }
        Admission::NotBelowMin => {
            // Once full, the lowest resident only rises, so an entry arriving after the archive
            // is full and scoring below the lowest of the residents and the fill entries is
            // rejected without changing anything: drop those first.
            let fill = capacity - len;
            let floor = scores[..fill.min(m)]
                .iter()
                .map(|&s| ascending_bits(s))
                .chain(lowest_resident)
                .min();
            let mut kept: Vec<u32> = Vec::with_capacity(m);
            for i in 0..m {
                let bits = ascending_bits(scores[i]);
                if i >= fill && floor.is_some_and(|f| bits < f) {
                    removed[i] = true;
                    rejected += 1;
                } else {
                    kept.push(i as u32);
                }
            }
            let overflow = (len + kept.len()).saturating_sub(capacity);
            if overflow == 0 {
                return finish(m, 0, removed, rejected, 0);
            }
            candidates.extend(&kept);
            // One more than the entries that leave: the lowest one that stays.
            let low_end = merge(scores, &candidates, &mut residents, overflow + 1);
            let victims = low_end[..overflow].iter().filter(|e| e.is_none()).count();
            for i in low_end[..overflow].iter().flatten() {
                removed[*i as usize] = true;
            }
            let replayed = count_rejected(m, &kept, len, capacity, &low_end);
            finish(
                m,
                victims,
                removed,
                rejected + replayed,
                overflow - victims - replayed,
            )
        }
    }
}

fn finish(
    m: usize,
    victims: usize,
    removed: Vec<bool>,
    rejected: usize,
    evicted_new: usize,
) -> Plan {
    Plan {
        victims,
        survivors: (0..m as u32).filter(|&i| !removed[i as usize]).collect(),
        rejected,
        evicted_new,
    }
}

/// The `count` lowest of the residents and the candidate new entries, ascending (None: the
/// next resident; Some(i): new entry i). On equal scores the resident comes first: its id is
/// smaller.
fn merge(
    scores: &[f64],
    candidates: &[u32],
    residents: &mut std::iter::Peekable<impl Iterator<Item = f64>>,
    count: usize,
) -> Vec<Option<u32>> {
    let sorted = sort_by_score(candidates, |i| scores[i as usize]);
    let mut out = Vec::with_capacity(count);
    let mut b = 0;
    while out.len() < count {
        let resident = residents.peek().map(|&s| ascending_bits(s));
        let new = sorted.get(b).map(|&i| ascending_bits(scores[i as usize]));
        match (resident, new) {
            (Some(r), Some(x)) if r <= x => {
                residents.next();
                out.push(None);
            }
            (Some(_), None) => {
                residents.next();
                out.push(None);
            }
            (_, Some(_)) => {
                out.push(Some(sorted[b]));
                b += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Replays `NotBelowMin` insertions of the `kept` entries on the low end only. `low_end`
/// lists, ascending, the entries that leave plus the lowest one that stays (None: a
/// resident, Some(i): new entry i). Every entry above it is admitted on arrival, and the
/// archive's lowest entry is always in `low_end` and only moves up once the archive is full,
/// so one forward pointer tracks it.
fn count_rejected(
    m: usize,
    kept: &[u32],
    len: usize,
    capacity: usize,
    low_end: &[Option<u32>],
) -> usize {
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
    for &i in kept {
        let q = position[i as usize];
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
