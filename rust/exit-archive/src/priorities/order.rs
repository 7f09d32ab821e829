//! Order-statistics B+tree over unique `(u64, u64)` keys, each carrying a `u32` slot: select
//! by rank, rank of a key, batched insertion and removal of sorted keys, in-order walks.
//!
//! Batches descend once: the sorted keys are split among children by the separators, so each
//! touched node is visited once per batch, and leaves are prefetched ahead of their turn.
//! Removal is lazy (empty nodes are unlinked, half-empty ones are not merged); the tree is
//! rebuilt packed once its leaves are on average less than half full, which keeps the
//! amortized cost O(log n) per key.

use crate::prefetch::prefetch_range;

pub(crate) type Key = (u64, u64);

const LEAF_CAP: usize = 32;
const INNER_CAP: usize = 64;
/// Entries per node when nodes are built or split: room for inserts before the next split.
const LEAF_FILL: usize = 24;
const INNER_FILL: usize = 48;
/// Leaves processed ahead of a prefetched one in batch walks.
const PREFETCH_AHEAD: usize = 6;

#[derive(Clone)]
#[repr(align(64))]
struct Leaf {
    len: usize,
    keys: [Key; LEAF_CAP],
    slots: [u32; LEAF_CAP],
}

#[derive(Clone)]
struct Inner {
    len: usize,
    /// `seps[i]` (i >= 1) separates child i - 1 (keys below) from child i (keys at or above).
    seps: [Key; INNER_CAP],
    children: [u32; INNER_CAP],
    counts: [u32; INNER_CAP],
}

impl Leaf {
    fn empty() -> Self {
        Leaf {
            len: 0,
            keys: [(0, 0); LEAF_CAP],
            slots: [0; LEAF_CAP],
        }
    }
}

impl Inner {
    fn empty() -> Self {
        Inner {
            len: 0,
            seps: [(0, 0); INNER_CAP],
            children: [0; INNER_CAP],
            counts: [0; INNER_CAP],
        }
    }

    /// Index of the child whose key range holds `key`.
    #[inline]
    fn child_for(&self, key: &Key) -> usize {
        self.seps[1..self.len].partition_point(|s| s <= key)
    }

    fn total(&self) -> u32 {
        self.counts[..self.len].iter().sum()
    }
}

/// A new node produced by a split: its first key, its index and its entry count.
type Split = (Key, u32, u32);

#[derive(Clone)]
pub(crate) struct OrderIndex {
    leaves: Vec<Leaf>,
    inners: Vec<Inner>,
    free_leaves: Vec<u32>,
    free_inners: Vec<u32>,
    root: u32,
    /// Number of inner levels above the leaves (0: the root is a leaf).
    height: usize,
    len: usize,
}

impl Default for OrderIndex {
    fn default() -> Self {
        Self::new()
    }
}

/// Sizes of `pieces` near-equal parts of `total` entries.
fn piece_sizes(total: usize, pieces: usize) -> impl Iterator<Item = usize> {
    let (base, extra) = (total / pieces, total % pieces);
    (0..pieces).map(move |p| base + usize::from(p < extra))
}

impl OrderIndex {
    pub(crate) fn new() -> Self {
        OrderIndex {
            leaves: vec![Leaf::empty()],
            inners: Vec::new(),
            free_leaves: Vec::new(),
            free_inners: Vec::new(),
            root: 0,
            height: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the node arenas.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.leaves.capacity() * std::mem::size_of::<Leaf>()
            + self.inners.capacity() * std::mem::size_of::<Inner>()
    }

    fn alloc_leaf(&mut self) -> u32 {
        if let Some(i) = self.free_leaves.pop() {
            self.leaves[i as usize].len = 0;
            i
        } else {
            self.leaves.push(Leaf::empty());
            (self.leaves.len() - 1) as u32
        }
    }

    fn alloc_inner(&mut self) -> u32 {
        if let Some(i) = self.free_inners.pop() {
            self.inners[i as usize].len = 0;
            i
        } else {
            self.inners.push(Inner::empty());
            (self.inners.len() - 1) as u32
        }
    }

    /// The entry of rank `r` (0-based, ascending order). Panics if `r >= len`.
    pub(crate) fn select(&self, mut r: usize) -> (Key, u32) {
        assert!(r < self.len, "rank {r} out of range {}", self.len);
        let mut node = self.root as usize;
        for _ in 0..self.height {
            let inner = &self.inners[node];
            let mut i = 0;
            while r >= inner.counts[i] as usize {
                r -= inner.counts[i] as usize;
                i += 1;
            }
            node = inner.children[i] as usize;
        }
        let leaf = &self.leaves[node];
        (leaf.keys[r], leaf.slots[r])
    }

    /// Number of keys strictly smaller than `key`.
    pub(crate) fn rank_lower_bound(&self, key: &Key) -> usize {
        let mut node = self.root as usize;
        let mut acc = 0usize;
        for _ in 0..self.height {
            let inner = &self.inners[node];
            let i = inner.child_for(key);
            acc += inner.counts[..i].iter().map(|&c| c as usize).sum::<usize>();
            node = inner.children[i] as usize;
        }
        let leaf = &self.leaves[node];
        acc + leaf.keys[..leaf.len].partition_point(|k| k < key)
    }

    /// The leaf holding `key` (or where it would go) and the key's position in it.
    fn find(&self, key: &Key) -> (usize, usize) {
        let mut node = self.root as usize;
        for _ in 0..self.height {
            let inner = &self.inners[node];
            node = inner.children[inner.child_for(key)] as usize;
        }
        let leaf = &self.leaves[node];
        (node, leaf.keys[..leaf.len].partition_point(|k| k < key))
    }

    /// Changes the slot carried by a present key.
    pub(crate) fn set_slot(&mut self, key: &Key, slot: u32) {
        let (leaf, at) = self.find(key);
        let leaf = &mut self.leaves[leaf];
        assert!(
            at < leaf.len && leaf.keys[at] == *key,
            "set_slot of an absent key"
        );
        leaf.slots[at] = slot;
    }

    /// Inserts strictly ascending entries whose keys are not present.
    pub(crate) fn insert_sorted(&mut self, entries: &[(Key, u32)]) {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        if entries.is_empty() {
            return;
        }
        let mut splits = Vec::new();
        self.insert_into(self.root, self.height, entries, &mut splits);
        self.len += entries.len();
        while !splits.is_empty() {
            // The root split: a new root over the old one and its new siblings.
            let old_total = self.subtree_total(self.root, self.height);
            let mut list = vec![((0, 0), self.root, old_total)];
            list.append(&mut splits);
            let node = self.alloc_inner();
            self.write_inner(node, &list, &mut splits);
            self.root = node;
            self.height += 1;
        }
    }

    fn subtree_total(&self, node: u32, height: usize) -> u32 {
        if height == 0 {
            self.leaves[node as usize].len as u32
        } else {
            self.inners[node as usize].total()
        }
    }

    fn insert_into(
        &mut self,
        node: u32,
        height: usize,
        entries: &[(Key, u32)],
        out: &mut Vec<Split>,
    ) {
        if height == 0 {
            return self.insert_into_leaf(node, entries, out);
        }
        // Split the batch among the children, then visit them with leaves prefetched ahead.
        let parts = self.partition(node, entries.len(), |i| entries[i].0);
        let mut new_children: Vec<(usize, Vec<Split>)> = Vec::new();
        for (p, &(i, start, end)) in parts.iter().enumerate() {
            if height == 1 {
                if let Some(&(j, _, _)) = parts.get(p + PREFETCH_AHEAD) {
                    let leaf = self.inners[node as usize].children[j] as usize;
                    prefetch_range(&self.leaves[leaf]);
                }
            }
            let child = self.inners[node as usize].children[i];
            let mut splits = Vec::new();
            self.insert_into(child, height - 1, &entries[start..end], &mut splits);
            let moved: u32 = splits.iter().map(|s| s.2).sum();
            let inner = &mut self.inners[node as usize];
            inner.counts[i] = inner.counts[i] + (end - start) as u32 - moved;
            if !splits.is_empty() {
                new_children.push((i, splits));
            }
        }
        if new_children.is_empty() {
            return;
        }
        let inner = &self.inners[node as usize];
        let mut list: Vec<Split> = Vec::with_capacity(inner.len + new_children.len());
        let mut pending = new_children.into_iter().peekable();
        for i in 0..inner.len {
            list.push((inner.seps[i], inner.children[i], inner.counts[i]));
            if pending.peek().is_some_and(|(c, _)| *c == i) {
                list.extend(pending.next().expect("peeked").1);
            }
        }
        self.write_inner(node, &list, out);
    }

    /// (child index, start, end) of each child's share of `len` sorted keys.
    fn partition(
        &self,
        node: u32,
        len: usize,
        key: impl Fn(usize) -> Key,
    ) -> Vec<(usize, usize, usize)> {
        let inner = &self.inners[node as usize];
        let mut parts = Vec::new();
        let mut start = 0;
        while start < len {
            let i = inner.child_for(&key(start));
            let end = if i + 1 < inner.len {
                let sep = inner.seps[i + 1];
                // First position at or after `start` whose key is >= sep.
                let (mut lo, mut hi) = (start + 1, len);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if key(mid) < sep {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            } else {
                len
            };
            parts.push((i, start, end));
            start = end;
        }
        parts
    }

    /// Writes a child list into `node`, splitting it into several inner nodes when it is too
    /// long; the extra nodes go to `out`.
    fn write_inner(&mut self, node: u32, list: &[Split], out: &mut Vec<Split>) {
        let pieces = if list.len() <= INNER_CAP {
            1
        } else {
            list.len().div_ceil(INNER_FILL)
        };
        let mut start = 0;
        for (p, size) in piece_sizes(list.len(), pieces).enumerate() {
            let target = if p == 0 { node } else { self.alloc_inner() };
            let inner = &mut self.inners[target as usize];
            inner.len = size;
            for (k, &(sep, child, count)) in list[start..start + size].iter().enumerate() {
                inner.seps[k] = sep;
                inner.children[k] = child;
                inner.counts[k] = count;
            }
            if p > 0 {
                out.push((list[start].0, target, inner.total()));
            }
            start += size;
        }
    }

    fn insert_into_leaf(&mut self, node: u32, entries: &[(Key, u32)], out: &mut Vec<Split>) {
        let leaf = &mut self.leaves[node as usize];
        let total = leaf.len + entries.len();
        if total <= LEAF_CAP {
            // Merge from the back, in place.
            let (mut i, mut j, mut w) = (leaf.len, entries.len(), total);
            while j > 0 {
                w -= 1;
                if i > 0 && leaf.keys[i - 1] > entries[j - 1].0 {
                    i -= 1;
                    leaf.keys[w] = leaf.keys[i];
                    leaf.slots[w] = leaf.slots[i];
                } else {
                    j -= 1;
                    leaf.keys[w] = entries[j].0;
                    leaf.slots[w] = entries[j].1;
                }
            }
            leaf.len = total;
            return;
        }
        let mut merged: Vec<(Key, u32)> = Vec::with_capacity(total);
        let (mut i, mut j) = (0, 0);
        while i < leaf.len || j < entries.len() {
            if j == entries.len() || (i < leaf.len && leaf.keys[i] < entries[j].0) {
                merged.push((leaf.keys[i], leaf.slots[i]));
                i += 1;
            } else {
                merged.push(entries[j]);
                j += 1;
            }
        }
        let mut start = 0;
        for (p, size) in piece_sizes(total, total.div_ceil(LEAF_FILL)).enumerate() {
            let target = if p == 0 { node } else { self.alloc_leaf() };
            let leaf = &mut self.leaves[target as usize];
            leaf.len = size;
            for (k, &(key, slot)) in merged[start..start + size].iter().enumerate() {
                leaf.keys[k] = key;
                leaf.slots[k] = slot;
            }
            if p > 0 {
                out.push((merged[start].0, target, size as u32));
            }
            start += size;
        }
    }

    /// Removes strictly ascending keys, all present.
    pub(crate) fn remove_sorted(&mut self, keys: &[Key]) {
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        if keys.is_empty() {
            return;
        }
        self.remove_from(self.root, self.height, keys);
        self.len -= keys.len();
        // Collapse roots with a single child; an emptied root becomes an empty leaf.
        while self.height > 0 && self.inners[self.root as usize].len <= 1 {
            let old = self.root;
            if self.inners[old as usize].len == 0 {
                self.free_inners.push(old);
                self.root = self.alloc_leaf();
                self.height = 0;
                break;
            }
            self.root = self.inners[old as usize].children[0];
            self.free_inners.push(old);
            self.height -= 1;
        }
        let live_leaves = self.leaves.len() - self.free_leaves.len();
        if live_leaves > 8 && live_leaves * LEAF_FILL > 2 * self.len + LEAF_CAP {
            self.rebuild();
        }
    }

    fn remove_from(&mut self, node: u32, height: usize, keys: &[Key]) {
        if height == 0 {
            let leaf = &mut self.leaves[node as usize];
            let (mut w, mut j) = (0, 0);
            for r in 0..leaf.len {
                if j < keys.len() && leaf.keys[r] == keys[j] {
                    j += 1;
                    continue;
                }
                leaf.keys[w] = leaf.keys[r];
                leaf.slots[w] = leaf.slots[r];
                w += 1;
            }
            assert_eq!(j, keys.len(), "removed a key that is not in the index");
            leaf.len = w;
            return;
        }
        let parts = self.partition(node, keys.len(), |i| keys[i]);
        let mut emptied = false;
        for (p, &(i, start, end)) in parts.iter().enumerate() {
            if height == 1 {
                if let Some(&(j, _, _)) = parts.get(p + PREFETCH_AHEAD) {
                    let leaf = self.inners[node as usize].children[j] as usize;
                    prefetch_range(&self.leaves[leaf]);
                }
            }
            let child = self.inners[node as usize].children[i];
            self.remove_from(child, height - 1, &keys[start..end]);
            let inner = &mut self.inners[node as usize];
            inner.counts[i] -= (end - start) as u32;
            emptied |= inner.counts[i] == 0;
        }
        if emptied {
            let inner = &self.inners[node as usize];
            let gone: Vec<u32> = (0..inner.len)
                .filter(|&i| inner.counts[i] == 0)
                .map(|i| inner.children[i])
                .collect();
            for child in gone {
                self.free_subtree(child, height - 1);
            }
            let inner = &mut self.inners[node as usize];
            let mut w = 0;
            for r in 0..inner.len {
                if inner.counts[r] > 0 {
                    inner.seps[w] = inner.seps[r];
                    inner.children[w] = inner.children[r];
                    inner.counts[w] = inner.counts[r];
                    w += 1;
                }
            }
            inner.len = w;
        }
    }

    fn free_subtree(&mut self, node: u32, height: usize) {
        if height == 0 {
            self.free_leaves.push(node);
            return;
        }
        let inner = self.inners[node as usize].clone();
        for &c in &inner.children[..inner.len] {
            self.free_subtree(c, height - 1);
        }
        self.free_inners.push(node);
    }

    /// Calls `f` on entries in ascending order from rank `from` until it returns false.
    pub(crate) fn walk_from(&self, from: usize, f: &mut impl FnMut(Key, u32) -> bool) {
        if from < self.len {
            self.walk_node(self.root, self.height, from, f);
        }
    }

    /// Returns false once `f` did.
    fn walk_node(
        &self,
        node: u32,
        height: usize,
        mut skip: usize,
        f: &mut impl FnMut(Key, u32) -> bool,
    ) -> bool {
        if height == 0 {
            let leaf = &self.leaves[node as usize];
            return (skip..leaf.len).all(|i| f(leaf.keys[i], leaf.slots[i]));
        }
        let inner = &self.inners[node as usize];
        for i in 0..inner.len {
            let c = inner.counts[i] as usize;
            if skip >= c {
                skip -= c;
                continue;
            }
            if !self.walk_node(inner.children[i], height - 1, skip, f) {
                return false;
            }
            skip = 0;
        }
        true
    }

    /// Calls `f` on entries in descending order from rank `before - 1` until it returns false.
    pub(crate) fn walk_back_from(&self, before: usize, f: &mut impl FnMut(Key, u32) -> bool) {
        let before = before.min(self.len);
        if before > 0 {
            self.walk_back_node(self.root, self.height, self.len - before, f);
        }
    }

    fn walk_back_node(
        &self,
        node: u32,
        height: usize,
        mut skip: usize,
        f: &mut impl FnMut(Key, u32) -> bool,
    ) -> bool {
        if height == 0 {
            let leaf = &self.leaves[node as usize];
            let end = leaf.len - skip;
            return (0..end).rev().all(|i| f(leaf.keys[i], leaf.slots[i]));
        }
        let inner = &self.inners[node as usize];
        for i in (0..inner.len).rev() {
            let c = inner.counts[i] as usize;
            if skip >= c {
                skip -= c;
                continue;
            }
            if !self.walk_back_node(inner.children[i], height - 1, skip, f) {
                return false;
            }
            skip = 0;
        }
        true
    }

    /// All entries in ascending order.
    pub(crate) fn entries(&self) -> Vec<(Key, u32)> {
        let mut out = Vec::with_capacity(self.len);
        self.walk_from(0, &mut |k, s| {
            out.push((k, s));
            true
        });
        out
    }

    fn rebuild(&mut self) {
        let entries = self.entries();
        *self = OrderIndex::from_sorted(&entries);
    }

    /// Builds a packed tree from strictly ascending entries.
    pub(crate) fn from_sorted(entries: &[(Key, u32)]) -> Self {
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
        let mut tree = OrderIndex::new();
        if entries.is_empty() {
            return tree;
        }
        tree.leaves.clear();
        let mut level: Vec<Split> = entries
            .chunks(LEAF_FILL)
            .map(|chunk| {
                let mut leaf = Leaf::empty();
                leaf.len = chunk.len();
                for (k, &(key, slot)) in chunk.iter().enumerate() {
                    leaf.keys[k] = key;
                    leaf.slots[k] = slot;
                }
                tree.leaves.push(leaf);
                (
                    chunk[0].0,
                    (tree.leaves.len() - 1) as u32,
                    chunk.len() as u32,
                )
            })
            .collect();
        let mut height = 0;
        while level.len() > 1 {
            level = level
                .chunks(INNER_FILL)
                .map(|chunk| {
                    let mut inner = Inner::empty();
                    inner.len = chunk.len();
                    for (i, &(first, child, count)) in chunk.iter().enumerate() {
                        inner.seps[i] = first;
                        inner.children[i] = child;
                        inner.counts[i] = count;
                    }
                    let total = inner.total();
                    tree.inners.push(inner);
                    (chunk[0].0, (tree.inners.len() - 1) as u32, total)
                })
                .collect();
            height += 1;
        }
        tree.root = level[0].1;
        tree.height = height;
        tree.len = entries.len();
        tree
    }

    /// Checks structural invariants (tests and debugging).
    pub(crate) fn check(&self) {
        let entries = self.entries();
        assert_eq!(entries.len(), self.len);
        assert!(
            entries.windows(2).all(|w| w[0].0 < w[1].0),
            "keys out of order"
        );
        self.check_node(self.root, self.height, None, None);
    }

    /// Returns the subtree's count; checks counts and that keys lie within [lo, hi).
    fn check_node(&self, node: u32, height: usize, lo: Option<Key>, hi: Option<Key>) -> u32 {
        if height == 0 {
            let leaf = &self.leaves[node as usize];
            for k in &leaf.keys[..leaf.len] {
                assert!(lo.map_or(true, |lo| *k >= lo) && hi.map_or(true, |hi| *k < hi));
            }
            return leaf.len as u32;
        }
        let inner = &self.inners[node as usize];
        assert!(inner.len >= 1);
        for i in 0..inner.len {
            let lo = if i == 0 { lo } else { Some(inner.seps[i]) };
            let hi = if i + 1 < inner.len {
                Some(inner.seps[i + 1])
            } else {
                hi
            };
            let c = self.check_node(inner.children[i], height - 1, lo, hi);
            assert_eq!(c, inner.counts[i], "stale subtree count");
        }
        inner.total()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use std::collections::BTreeMap;

    fn sorted_batch(rng: &mut Rng, model: &BTreeMap<Key, u32>, size: usize) -> Vec<(Key, u32)> {
        let mut batch = BTreeMap::new();
        while batch.len() < size {
            let key = (rng.below(4000), rng.below(50));
            if !model.contains_key(&key) {
                batch.insert(key, rng.below(1000) as u32);
            }
        }
        batch.into_iter().collect()
    }

    #[test]
    fn batches_match_a_sorted_map() {
        let mut rng = Rng::new(3);
        let mut tree = OrderIndex::new();
        let mut model: BTreeMap<Key, u32> = BTreeMap::new();
        for round in 0..3000 {
            let size = [1, 2, 7, 40, 300][rng.below(5) as usize];
            if rng.below(5) < 2 && !model.is_empty() {
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
            } else if model.len() < 20_000 {
                let batch = sorted_batch(&mut rng, &model, size);
                tree.insert_sorted(&batch);
                model.extend(batch);
            }
            if round % 97 == 0 {
                tree.check();
                let expected: Vec<(Key, u32)> = model.iter().map(|(&k, &s)| (k, s)).collect();
                assert_eq!(tree.entries(), expected);
                for (r, (k, s)) in expected.iter().enumerate().step_by(13) {
                    assert_eq!(tree.select(r), (*k, *s));
                    assert_eq!(tree.rank_lower_bound(k), r);
                }
            }
        }
        let all: Vec<Key> = model.keys().copied().collect();
        tree.remove_sorted(&all);
        assert_eq!(tree.len(), 0);
        tree.check();
        tree.insert_sorted(&[((1, 1), 7)]);
        assert_eq!(tree.select(0), ((1, 1), 7));
    }

    #[test]
    fn walks_and_slots() {
        let entries: Vec<(Key, u32)> = (0..5000u64).map(|i| ((i / 3, i), i as u32)).collect();
        let mut tree = OrderIndex::from_sorted(&entries);
        tree.check();
        assert_eq!(tree.rank_lower_bound(&(100, 0)), 300);
        let mut seen = Vec::new();
        tree.walk_from(4990, &mut |k, _| {
            seen.push(k.1);
            true
        });
        assert_eq!(seen, (4990..5000).collect::<Vec<u64>>());
        seen.clear();
        tree.walk_back_from(20, &mut |k, _| {
            seen.push(k.1);
            seen.len() < 5
        });
        assert_eq!(seen, vec![19, 18, 17, 16, 15]);
        tree.set_slot(&(10, 31), 99);
        assert_eq!(tree.select(31), ((10, 31), 99));
    }
}
