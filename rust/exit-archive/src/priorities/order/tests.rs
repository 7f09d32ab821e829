use super::*;
use crate::rng::Rng;
use std::collections::BTreeMap;

fn key(score_rank: u64, id: u64) -> Key {
    Key { score_rank, id }
}

fn sorted_batch(rng: &mut Rng, model: &BTreeMap<Key, u32>, size: usize) -> Vec<Entry> {
    let mut batch = BTreeMap::new();
    while batch.len() < size {
        let k = key(rng.below(4000), rng.below(50));
        if !model.contains_key(&k) {
            batch.insert(k, rng.below(1000) as u32);
        }
    }
    batch
        .into_iter()
        .map(|(key, slot)| Entry { key, slot })
        .collect()
}

fn expect(tree: &OrderIndex, model: &BTreeMap<Key, u32>) {
    tree.check();
    let expected: Vec<Entry> = model
        .iter()
        .map(|(&key, &slot)| Entry { key, slot })
        .collect();
    assert_eq!(tree.entries(), expected);
    for (r, e) in expected.iter().enumerate().step_by(13) {
        assert_eq!(tree.select(r), *e);
        assert_eq!(tree.rank_lower_bound(&e.key), r);
    }
}

#[test]
fn batches_match_a_sorted_map() {
    let mut rng = Rng::new(3);
    let mut tree = OrderIndex::new();
    let mut model: BTreeMap<Key, u32> = BTreeMap::new();
    for round in 0..3000 {
        let size = [1, 2, 7, 40, 300][rng.below(5) as usize];
        let choice = rng.below(6);
        if choice < 2 && !model.is_empty() {
            // Remove a random sorted subset, sometimes a contiguous run.
            let all: Vec<Key> = model.keys().copied().collect();
            let keys: Vec<Key> = if rng.below(2) == 0 {
                let start = rng.below(all.len() as u64) as usize;
                all[start..(start + size).min(all.len())].to_vec()
            } else {
                all.into_iter()
                    .filter(|_| rng.below(4) == 0)
                    .take(size)
                    .collect()
            };
            tree.remove_sorted(&keys);
            for k in &keys {
                model.remove(k);
            }
        } else if choice == 2 && !model.is_empty() {
            // Remove a rank range, sometimes the whole tail.
            let n = model.len();
            let lo = rng.below(n as u64) as usize;
            let hi = if rng.below(3) == 0 {
                n
            } else {
                (lo + size).min(n)
            };
            tree.remove_range(lo, hi);
            let gone: Vec<Key> = model.keys().skip(lo).take(hi - lo).copied().collect();
            for k in gone {
                model.remove(&k);
            }
        } else if model.len() < 20_000 {
            let batch = sorted_batch(&mut rng, &model, size);
            tree.insert_sorted(&batch);
            model.extend(batch.iter().map(|e| (e.key, e.slot)));
        }
        assert_eq!(tree.len(), model.len());
        if round % 97 == 0 {
            expect(&tree, &model);
        }
    }
    expect(&tree, &model);
    let n = tree.len();
    tree.remove_range(0, n);
    assert_eq!(tree.len(), 0);
    tree.check();
    tree.insert_sorted(&[Entry {
        key: key(1, 1),
        slot: 7,
    }]);
    assert_eq!(tree.select(0).slot, 7);
}

#[test]
fn positions_walk_the_leaf_chain() {
    let entries: Vec<Entry> = (0..5000u64)
        .map(|i| Entry {
            key: key(i / 3, i),
            slot: i as u32,
        })
        .collect();
    let mut tree = OrderIndex::from_sorted(&entries);
    // Insertions into existing leaves (merged in, no split everywhere).
    let extra: Vec<Entry> = (0..500u64)
        .map(|i| Entry {
            key: key(i * 5, 10_000 + i),
            slot: 9,
        })
        .collect();
    tree.insert_sorted(&extra);
    tree.check();
    let all = tree.entries();
    assert_eq!(
        tree.rank_lower_bound(&key(100, 0)),
        all.partition_point(|e| e.key < key(100, 0))
    );
    let mut cursor = Cursor::at_rank(&tree, 17);
    assert_eq!(cursor.entry(), all[17]);
    for expected in &all[18..] {
        assert!(cursor.advance(), "not at the end");
        assert_eq!(cursor.entry(), *expected);
    }
    assert!(!cursor.advance());
    for r in (0..all.len() - 1).rev() {
        assert!(cursor.retreat(), "not at the start");
        assert_eq!(cursor.entry(), all[r]);
    }
    assert!(!cursor.retreat());
    // A rebuild by merge equals the sorted union without the removed ranks.
    let new: Vec<Entry> = (0..40u64)
        .map(|i| Entry {
            key: key(i * 31, 20_000 + i),
            slot: 3,
        })
        .collect();
    let gone: Vec<std::ops::Range<usize>> = (0..all.len())
        .step_by(7)
        .map(|r| r..(r + 2).min(all.len()))
        .collect();
    let merged = tree.rebuilt(Removed::Ranks(&gone), &new);
    let mut expected: Vec<Entry> = all
        .iter()
        .enumerate()
        .filter(|(r, _)| r % 7 > 1)
        .map(|(_, e)| *e)
        .chain(new.iter().copied())
        .collect();
    expected.sort_unstable_by_key(|e| e.key);
    merged.check();
    assert_eq!(merged.entries(), expected);
    // The same entries removed by their keys.
    let gone_keys: Vec<Key> = all
        .iter()
        .enumerate()
        .filter(|(r, _)| r % 7 <= 1)
        .map(|(_, e)| e.key)
        .collect();
    let merged = tree.rebuilt(Removed::Keys(&gone_keys), &new);
    merged.check();
    assert_eq!(merged.entries(), expected);
    for (r, e) in all.iter().enumerate() {
        assert_eq!(tree.select(r), *e);
    }
    tree.set_slot(&key(10, 31), 99);
    assert_eq!(
        tree.select(tree.rank_lower_bound(&key(10, 31))),
        Entry {
            key: key(10, 31),
            slot: 99
        }
    );
    tree.check();
}
